"""Runnable end-to-end pipelines (also behind ``udesci example ...``)."""

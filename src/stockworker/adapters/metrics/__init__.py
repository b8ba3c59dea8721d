"""Prometheus metrics: instruments, the observer that feeds them, scrape-time collectors
(consumer lag, outbox, pool), FastStream's broker middleware, and the exposition served
at /metrics. See multiprocess.py for how the relay's child process reports its own."""

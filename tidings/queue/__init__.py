"""Outbound mail: the delivery worker, next-hop resolution, the SMTP client side, retries and DSNs.

`worker.QueueWorker` is started by the server; `dsn.bounce` is also used by the SMTP server for
recipients that fail after DATA was accepted (over quota). This package reads and writes queue state
only through `store.queue` and `store.delivery`.
"""

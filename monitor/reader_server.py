"""Imported by the readers' fork server alone (its preload, see readers._context), never by
Vigie's own code: it makes that process ignore SIGTERM.

A SIGTERM sent to the whole process group (a service manager stopping Vigie, `kill -- -PGID`)
ended the fork server, and with it the pipes through which the service watches its readers: the
pool broke mid-poll, and "a feed reader process died" was logged at every stop. The fork server
still ends with the service (it watches a pipe from it), and ignores SIGINT already (Python's own
code does that).
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)

"""Worker processes that read and match changed feeds (polling.processes): real feeds on loopback,
real worker processes, real databases; what they store must be what the polling process alone
stores, whatever happens to the workers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import LoopbackServer
from identity_support import NOW, Item, Service, rss, rule_index
from process_support import rows

from monitor import pipeline
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.pipeline import CycleSummary, Matcher, poll_due
from monitor.readers import ReaderPool
from monitor.records import Article, Evidence, Match
from monitor.rules.files import load_rules
from monitor.rules.index import RuleIndex

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def real_feeds(shared_corpora: Path, server: LoopbackServer) -> list[str]:
    """Eight real feed documents of eight outlets (BBC, CNN, franceinfo, the Guardian, Le Monde,
    the New York Times), served on loopback. They share no item, so which feed is stored first
    changes nothing."""
    single = shared_corpora / "feeds" / "single"
    files = sorted([*single.glob("*.xml"), *single.glob("*.rss")])
    assert len(files) == 8
    for i, path in enumerate(files):
        server.route(f"/real/{i}.xml", path.read_bytes())
    return [server.url(f"/real/{i}.xml") for i in range(len(files))]


def make_service(folder: Path, urls: list[str], processes: int) -> Service:
    folder.mkdir()
    feeds = "".join(f'[[feeds]]\nurl = "{url}"\n' for url in urls)
    path = folder / "config.toml"
    path.write_text(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\n'
        f"[polling]\nprocesses = {processes}\n{feeds}",
        encoding="utf-8",
    )
    return Service(path)


def poll(
    service: Service, matcher: Matcher | None, readers: ReaderPool | None, hours: int = 0
) -> CycleSummary:
    now = NOW + timedelta(hours=hours)
    config = service.config
    return poll_due(
        service.store, service.session, config, matcher, now, force=True, readers=readers
    )


def stored(service: Service) -> tuple[list[tuple], list[tuple]]:
    """(articles, matches) as a reader of the database sees them, without ids or clocks."""
    articles = service.rows(
        "SELECT feed_id, guid, title, language, canonical_url FROM articles ORDER BY feed_id, guid"
    )
    matches = service.rows(
        "SELECT a.feed_id, a.guid, m.rule_id, m.score, m.evidence FROM matches m "
        "JOIN articles a ON a.id = m.article_id ORDER BY a.feed_id, a.guid, m.rule_id"
    )
    mentions = service.rows("SELECT COUNT(*) AS n FROM mentions")[0]["n"]
    # The stems search finds articles by (store.stems), worked out by the workers ahead.
    stems = service.rows(
        "SELECT a.feed_id, a.guid, s.* FROM articles_stems s JOIN articles a ON a.id = s.rowid "
        "ORDER BY a.feed_id, a.guid"
    )
    return [tuple(r.values()) for r in articles], [tuple(r.values()) for r in matches] + [
        ("mentions", mentions),
        *(tuple(r.values()) for r in stems),
    ]


@pytest.fixture
def pack() -> RuleIndex:
    loaded = load_rules([REPO / "rules"])
    assert loaded.ok, loaded.errors
    return loaded.index()


def test_workers_store_exactly_what_the_polling_process_stores(
    tmp_path: Path, real_feeds: list[str], pack: RuleIndex
) -> None:
    alone = make_service(tmp_path / "alone", real_feeds, processes=0)
    pooled = make_service(tmp_path / "pooled", real_feeds, processes=2)
    assert alone.config.polling.processes == 0 and pooled.config.polling.processes == 2
    with ReaderPool(pooled.config.polling.processes, min_feeds=len(real_feeds)) as readers:
        summary = poll(pooled, pack, readers)
        workers_cpu = readers.cpu_seconds()
    expected = poll(alone, pack, None)

    assert summary.errors == [] and summary.feeds_polled == 8
    assert summary.new_articles == expected.new_articles > 300
    assert summary.new_matches == expected.new_matches > 10
    assert stored(pooled) == stored(alone)
    assert workers_cpu > 0  # the workers read the feeds, not the polling process
    evidence = json.loads(stored(pooled)[1][0][4])
    assert evidence and all("term" in e for e in evidence)
    alone.close()
    pooled.close()


def test_a_cycle_of_few_feeds_starts_no_worker(tmp_path: Path, real_feeds: list[str]) -> None:
    service = make_service(tmp_path / "few", real_feeds[:3], processes=2)
    with ReaderPool(2) as readers:
        summary = poll(service, None, readers)
        assert summary.new_articles > 0 and readers.cpu_seconds() == 0.0
    service.close()


def test_edited_rules_reach_the_workers(tmp_path: Path, server: LoopbackServer) -> None:
    """A new rule index (the rule files changed) starts new workers that hold it."""
    urls = []
    for i in range(4):
        first = rss([Item(f"{i}-a", f"Dockers strike in port {i}")])
        then = rss(
            [Item(f"{i}-a", f"Dockers strike in port {i}"), Item(f"{i}-b", f"Ferry strike {i}")]
        )
        server.route(f"/f{i}.xml", bodies=[first, then])
        urls.append(server.url(f"/f{i}.xml"))
    service = make_service(tmp_path / "svc", urls, processes=1)
    before = rule_index(tmp_path, {"dockers": "dockers"})
    after = rule_index(tmp_path, {"ferry": "ferry"})
    with ReaderPool(1, min_feeds=2) as readers:
        assert poll(service, before, readers).new_matches == 4
        first_cpu = readers.cpu_seconds()
        assert first_cpu > 0
        assert poll(service, after, readers, hours=1).new_matches == 4
        assert readers.cpu_seconds() > first_cpu
    rules = service.rows(
        "SELECT a.guid, m.rule_id FROM matches m JOIN articles a ON a.id = m.article_id"
    )
    assert (
        sorted((r["guid"][-1], r["rule_id"]) for r in rules)
        == [("a", "dockers")] * 4 + [("b", "ferry")] * 4
    )
    service.close()


def test_rules_with_warnings_still_reach_the_workers(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """A rule `rules check` warns about (a lowercase "and", searched as a word) is compiled with
    its warnings, which the workers receive too: an exception class that could not be unpickled
    there stopped every worker from starting, and the service read every feed in one process."""
    urls = []
    for i in range(4):
        server.route(
            f"/f{i}.xml", bodies=[rss([Item(f"{i}-a", f"Dockers and strike in port {i}")])]
        )
        urls.append(server.url(f"/f{i}.xml"))
    service = make_service(tmp_path / "svc", urls, processes=1)
    index = rule_index(tmp_path, {"dockers": "dockers and strike"})
    assert index.rules[0].warnings  # the rule is compiled with a warning
    with ReaderPool(1, min_feeds=2) as readers:
        assert poll(service, index, readers).new_matches == 4
        assert readers.cpu_seconds() > 0  # read in the worker, not in this process
    service.close()


class DiesInWorkers:
    """A matcher that kills the worker process reading an article titled "die", as a crash or
    the out-of-memory killer would; in the polling process it matches every article."""

    def __init__(self) -> None:
        self.home = os.getpid()

    def match(
        self, article: Article, feed_tags: tuple[str, ...] = ()
    ) -> tuple[list[Match], list[Evidence]]:
        if article.title == "die" and os.getpid() != self.home:
            os._exit(9)
        return [Match(None, "all", 1.0, ())], []


def test_a_worker_that_dies_loses_no_feed(tmp_path: Path, server: LoopbackServer) -> None:
    urls = []
    for i in range(6):
        title = "die" if i == 2 else f"Story {i}"
        server.route(f"/f{i}.xml", rss([Item(f"g{i}", title)]))
        urls.append(server.url(f"/f{i}.xml"))
    service = make_service(tmp_path / "svc", urls, processes=2)
    matcher = DiesInWorkers()
    with ReaderPool(2, min_feeds=2) as readers:
        summary = poll(service, matcher, readers)
        assert summary.errors == []
        assert summary.new_articles == 6 and summary.new_matches == 6
        # The next cycle has new workers: a feed that changed is read in one of them again.
        cpu = readers.cpu_seconds()
        server.route("/f0.xml", rss([Item("g0", "Story 0"), Item("g0b", "Story 0b")]))
        later = poll(service, matcher, readers, hours=1)
        assert later.errors == [] and later.new_articles == 1
        assert readers.cpu_seconds() > cpu
    assert service.rows("SELECT COUNT(*) AS n FROM matches")[0]["n"] == 7
    service.close()


def _refuse_in(home: int) -> str:
    if os.getpid() == home:
        raise RuntimeError("this result cannot be read here")
    return ""


class Unreadable:
    """Pickles to a value the polling process cannot load, as after an upgrade that changed a
    record while old workers still ran."""

    def __init__(self, home: int) -> None:
        self.home = home

    def __reduce__(self) -> tuple:
        return _refuse_in, (self.home,)


class UnreadableFromWorkers(DiesInWorkers):
    def match(
        self, article: Article, feed_tags: tuple[str, ...] = ()
    ) -> tuple[list[Match], list[Evidence]]:
        snippet = "" if os.getpid() == self.home else Unreadable(self.home)
        return [Match(None, "all", 1.0, (), snippet=snippet)], []  # type: ignore[arg-type]


def test_a_result_the_polling_process_cannot_read_hangs_nothing(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """The pool breaks with its workers alive; stopping them must not wait forever."""
    urls = []
    for i in range(6):
        server.route(f"/f{i}.xml", rss([Item(f"g{i}", f"Story {i}")]))
        urls.append(server.url(f"/f{i}.xml"))
    service = make_service(tmp_path / "svc", urls, processes=2)
    matcher = UnreadableFromWorkers()
    results: list[CycleSummary] = []
    readers = ReaderPool(2, min_feeds=2)

    def cycles() -> None:
        results.append(poll(service, matcher, readers))
        server.route("/f0.xml", rss([Item("g0", "Story 0"), Item("g0b", "Story 0b")]))
        results.append(poll(service, matcher, readers, hours=1))  # stops the broken workers
        readers.close()

    thread = threading.Thread(target=cycles, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "polling hung on a broken pool"
    assert [r.errors for r in results] == [[], []]
    assert [r.new_articles for r in results] == [6, 1]
    assert service.rows("SELECT COUNT(*) AS n FROM matches")[0]["n"] == 7
    service.close()


def _busy_in_worker(pid_file: str, seconds: float) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)


def test_a_reader_dying_between_feeds_hangs_no_close(tmp_path: Path) -> None:
    """Python ends the other workers of a pool it finds broken with SIGTERM, and waits for
    them: readers ignore SIGTERM. A reader killed outside any read (the out-of-memory killer,
    between two polls) died holding the lock of the queue they take feeds from, and the
    other, done with its feed, waited for that lock for ever: so did closing the pool, at a
    rule reload or at the service's stop (a code review)."""
    readers = ReaderPool(2, min_feeds=1)
    assert readers.use(None, 2)
    executor = readers._executor
    assert executor is not None
    for future in [executor.submit(os.getpid) for _ in range(4)]:
        future.result()
    workers = {p.pid: p for p in executor._processes.values()}  # type: ignore[attr-defined]
    assert len(workers) == 2
    pid_file = tmp_path / "busy"
    busy = executor.submit(_busy_in_worker, str(pid_file), 3.0)
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [idle] = set(workers) - {int(pid_file.read_text())}
    os.kill(idle, signal.SIGKILL)  # the one waiting for work, which holds the queue's lock
    with pytest.raises(BrokenProcessPool):
        busy.result(timeout=10)
    closing = threading.Thread(target=readers.close, daemon=True)
    closing.start()
    closing.join(timeout=30)
    hung = closing.is_alive()
    for worker in workers.values():
        if worker.is_alive():
            worker.kill()
    closing.join(timeout=10)
    assert not hung, "closing a pool with a dead reader hung"


def tagged_processes(tag: str) -> list[int]:
    """Live processes whose environment holds VIGIE_TEST_TAG=tag: a service and its readers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # gone, or not ours
            continue
        if f"VIGIE_TEST_TAG={tag}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def sixteen_feeds(tmp_path: Path, server: LoopbackServer) -> Path:
    """A config of 16 feeds on loopback (enough for readers to start) with processes = 2."""
    feeds = ""
    for i in range(16):
        server.route(f"/f{i}.xml", rss([Item(f"g{i}", f"Police officers charged in Calais {i}")]))
        feeds += f'[[feeds]]\nurl = "{server.url(f"/f{i}.xml")}"\n'
    path = tmp_path / "config.toml"
    path.write_text(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\n'
        f'[polling]\nprocesses = 2\n[rules]\npaths = ["{REPO / "rules"}"]\n{feeds}',
        encoding="utf-8",
    )
    return path


def start_service(
    config: Path, command: str, tag: str, new_session: bool = False
) -> subprocess.Popen:
    """`new_session`: a process group of its own, as a terminal gives (Ctrl+C reaches all)."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "service.py"), command, "--config", str(config)],
        cwd=config.parent,
        env={**os.environ, "VIGIE_TEST_TAG": tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )


def wait_for_articles(database: Path, count: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):
            if rows(database, "SELECT COUNT(*) FROM articles")[0][0] == count:
                return
        time.sleep(0.05)


def test_vigie_once_reads_in_workers_and_leaves_no_process(sixteen_feeds: Path) -> None:
    tag = uuid.uuid4().hex
    service = start_service(sixteen_feeds, "once", tag)
    most = 0
    while service.poll() is None:
        most = max(most, len(tagged_processes(tag)))
        time.sleep(0.02)
    output = service.communicate()[0]
    assert service.returncode == 0, output
    assert most >= 4  # the service, the fork server and two readers
    assert "16 new articles" in output and "16 new matches" in output
    assert tagged_processes(tag) == []


def test_ctrl_c_stops_the_service_and_its_readers_without_a_traceback(
    sixteen_feeds: Path,
) -> None:
    """Ctrl+C in a terminal reaches the whole process group: each reader printed a
    KeyboardInterrupt traceback while the service itself stopped cleanly."""
    tag = uuid.uuid4().hex
    service = start_service(sixteen_feeds, "run", tag, new_session=True)
    try:
        wait_for_articles(sixteen_feeds.parent / "vigie.db", 16)
        assert len(tagged_processes(tag)) >= 4  # the service, the fork server, two readers
        time.sleep(1)  # the readers idle, waiting for work, as they are most of the time
        os.killpg(service.pid, signal.SIGINT)
        output = service.communicate(timeout=30)[0]
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.communicate()
    assert service.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_sigterm_to_the_process_group_mid_poll_stops_without_an_error(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """A service manager stopping the whole control group (systemd's default KillMode), or
    `kill -- -PGID`, sends SIGTERM to the readers and their fork server too: they died mid-feed
    and "a feed reader process died" was logged at every stop."""
    feeds = ""
    body = "Officers questioned the driver at the port. " * 30
    for i in range(16):  # feeds slow enough to read that the signal lands mid-poll
        items = [Item(f"g{i}-{j}", f"Police officers charged {i} {j}", body) for j in range(800)]
        server.route(f"/f{i}.xml", rss(items))
        feeds += f'[[feeds]]\nurl = "{server.url(f"/f{i}.xml")}"\n'
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\nmax_bytes = "20MB"\n'
        f'[polling]\nprocesses = 2\n[rules]\npaths = ["{REPO / "rules"}"]\n{feeds}',
        encoding="utf-8",
    )
    tag = uuid.uuid4().hex
    service = start_service(config, "run", tag, new_session=True)
    try:
        database, deadline = config.parent / "vigie.db", time.monotonic() + 60
        while time.monotonic() < deadline:  # the first feed stored, the readers on the next
            with contextlib.suppress(sqlite3.OperationalError):
                if rows(database, "SELECT COUNT(*) FROM articles")[0][0]:
                    break
            time.sleep(0.02)
        assert len(tagged_processes(tag)) >= 4  # the service, the fork server, two readers
        os.killpg(service.pid, signal.SIGTERM)
        output = service.communicate(timeout=60)[0]
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.communicate()
    assert service.returncode == 0, output
    assert "polled" in output, output  # stopped after the feeds in hand, and said so
    assert "ERROR" not in output and "Traceback" not in output, output
    stored = rows(database, "SELECT COUNT(*) FROM articles")[0][0]
    assert 0 < stored < 16 * 800  # mid-poll: some feeds stored, the others left due
    deadline = time.monotonic() + 20
    while tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tagged_processes(tag) == []


def test_a_killed_service_leaves_no_reader_behind(sixteen_feeds: Path) -> None:
    """SIGKILL gives the service no chance to stop its readers: they must notice and exit."""
    tag = uuid.uuid4().hex
    service = start_service(sixteen_feeds, "run", tag)
    try:
        wait_for_articles(sixteen_feeds.parent / "vigie.db", 16)
        assert len(tagged_processes(tag)) >= 4  # the service, the fork server, two readers
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)
        deadline = time.monotonic() + 20
        while tagged_processes(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tagged_processes(tag) == []
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()
        for pid in tagged_processes(tag):
            os.kill(pid, signal.SIGKILL)


_STUCK_SERVICE = """
import sys, time
sys.path.insert(0, {tests!r})
from concurrent.futures import ProcessPoolExecutor
from monitor import readers
import reader_task
pool = ProcessPoolExecutor(
    1, mp_context=readers._context(), initializer=readers._start_worker, initargs=(None,)
)
pool.submit(reader_task.held_for_minutes, {pid_file!r})
time.sleep(600)
"""


def test_a_reader_busy_when_its_service_died_ends_on_sigterm(tmp_path: Path) -> None:
    """A security review: readers ignore SIGTERM (the service stops them itself), and one busy
    in a long C call when the service was killed could run on as an orphan, its watch on the
    service unable to run and SIGTERM ignored. Once the service is gone, SIGTERM ends it."""
    pid_file = tmp_path / "reader.pid"
    script = _STUCK_SERVICE.format(tests=str(REPO / "tests"), pid_file=str(pid_file))
    service = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    reader = 0
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # in the regular expression
        reader = int(pid_file.read_text())
        service.kill()
        service.wait(10)
        time.sleep(0.5)
        assert Path(f"/proc/{reader}").exists()  # busy: its watch on the service cannot run
        os.kill(reader, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(reader) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(reader)
    finally:
        if service.poll() is None:
            service.kill()
        if reader and _alive(reader):
            os.kill(reader, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether the process runs (not gone, nor a zombie left to init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_processes_setting(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[polling]\nprocesses = "auto"\n', encoding="utf-8")
    cpus = os.cpu_count() or 1
    assert load_config(path).polling.processes == (cpus if cpus > 1 else 0)
    path.write_text("[polling]\nprocesses = 3\n", encoding="utf-8")
    assert load_config(path).polling.processes == 3
    path.write_text('[polling]\nprocesses = "many"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "polling.processes" in str(error.value) and '"auto"' in str(error.value)


def test_a_backlog_smaller_than_any_feed_still_stores_every_feed(
    tmp_path: Path, real_feeds: list[str], pack: RuleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetching runs ahead of storing by at most pipeline._BACKLOG_ARTICLES articles read (a
    first cycle of 2,000 feeds held 65,000 at once): a feed of more is let through when none
    wait, so however small the room, nothing stalls and nothing is lost."""
    monkeypatch.setattr(pipeline, "_BACKLOG_ARTICLES", 1)
    tight = make_service(tmp_path / "tight", real_feeds, processes=2)
    with ReaderPool(2, min_feeds=len(real_feeds)) as readers:
        summary = poll(tight, pack, readers)
    alone = make_service(tmp_path / "alone", real_feeds, processes=0)
    expected = poll(alone, pack, None)
    assert summary.feeds_polled == 8 and summary.new_articles == expected.new_articles > 300
    assert stored(tight) == stored(alone)
    assert summary.changes == []  # kept only when asked: the cycle's articles are let go
    tight.close()
    alone.close()

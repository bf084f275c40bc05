"""The results index: results/lab.db, SQLite, filled as each run ends.

The run folders (run.json) and the nightly folders (nightly.json) are the source of truth: the index
is only a way to find and compare them, and import_folder() rebuilds it from them, so a deleted or
corrupt lab.db loses nothing. WAL mode and a busy timeout let several nightlies and one-off runs write
at once; every write is one short transaction. The schema has a version and a list of migrations.
"""

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

SCHEMA_VERSION = 1
# MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS = [
    """
    CREATE TABLE nightlies (id TEXT PRIMARY KEY, suite TEXT, lab_hash TEXT, started_at TEXT,
                            finished_at TEXT, complete INTEGER, path TEXT);
    CREATE TABLE runs (id TEXT PRIMARY KEY, nightly TEXT, cell TEXT, attempt INTEGER, kernel TEXT, test TEXT,
                       verdict TEXT, reason TEXT, flags TEXT, started_at TEXT, duration_s REAL, path TEXT);
    CREATE INDEX runs_by_nightly ON runs (nightly, cell);
    CREATE TABLE splats (run TEXT, signature TEXT, title TEXT, occurrences INTEGER, ignored INTEGER,
                         PRIMARY KEY (run, signature));
    """,
]


class Store:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                for statement in filter(str.strip, step.split(";")):
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self):
        store = self

        class Tx:
            def __enter__(self):
                store.db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write

            def __exit__(self, exc_type, *rest):
                store.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return Tx()

    def close(self) -> None:
        self.db.close()

    def add_run(self, record: Dict[str, Any], nightly: Optional[str] = None, cell: Optional[str] = None,
                attempt: int = 1) -> None:
        if not record.get("id"):
            return  # a run that made no folder has nothing to point to; its nightly.json keeps the reason
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
                record["id"], nightly, cell, attempt, (record.get("kernel") or {}).get("name"), record.get("test"),
                record.get("verdict"), record.get("reason"), json.dumps(record.get("flags", [])),
                record.get("started_at"), record.get("duration_s"), record.get("run_dir")))
            self.db.execute("DELETE FROM splats WHERE run = ?", (record["id"],))
            self.db.executemany("INSERT INTO splats VALUES (?,?,?,?,?)", [
                (record["id"], s["signature"], s["title"], s.get("occurrences", 1), int(bool(s.get("ignored"))))
                for s in record.get("splats", [])])

    def add_nightly(self, n: Dict[str, Any], path: Path) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO nightlies VALUES (?,?,?,?,?,?,?)", (
                n["id"], n["suite"], n["lab_hash"], n["started_at"], n.get("finished_at"), int(n["complete"]),
                str(path)))

    def nightlies(self, suite: Optional[str] = None) -> List[sqlite3.Row]:
        """Newest first."""
        if suite is None:
            return self.db.execute("SELECT * FROM nightlies ORDER BY started_at DESC").fetchall()
        return self.db.execute("SELECT * FROM nightlies WHERE suite = ? ORDER BY started_at DESC", (suite,)).fetchall()

    def runs(self, nightly: str) -> List[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs WHERE nightly = ? ORDER BY cell, attempt", (nightly,)).fetchall()

    def delete_nightly(self, nightly: str) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM splats WHERE run IN (SELECT id FROM runs WHERE nightly = ?)", (nightly,))
            self.db.execute("DELETE FROM runs WHERE nightly = ?", (nightly,))
            self.db.execute("DELETE FROM nightlies WHERE id = ?", (nightly,))


def _json_files(folder: Path, name: str) -> Iterator[Path]:
    return iter(sorted(folder.glob(f"**/{name}")))


def import_folder(results: Path, db_path: Path) -> Dict[str, int]:
    """Rebuild the index at DB_PATH from the run and nightly folders under RESULTS."""
    db_path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    store = Store(db_path)
    counts = {"nightlies": 0, "runs": 0}
    try:
        in_nightly: Dict[str, tuple] = {}
        for path in _json_files(results, "nightly.json"):
            n = json.loads(path.read_text())
            store.add_nightly(n, path.parent)
            counts["nightlies"] += 1
            for key, cell in n["cells"].items():
                for number, attempt in enumerate(cell["attempts"], start=1):
                    if attempt.get("run"):
                        in_nightly[attempt["run"]] = (n["id"], key, number)
        for path in _json_files(results, "run.json"):
            record = json.loads(path.read_text())
            record["run_dir"] = str(path.parent)
            store.add_run(record, *in_nightly.get(record.get("id"), (None, None, 1)))
            counts["runs"] += 1
    finally:
        store.close()
    return counts

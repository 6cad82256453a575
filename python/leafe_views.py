#!/usr/bin/env python3
"""leafe_views: a leafe store's tables in Spark, DuckDB and polars, exactly
as leafe's own queries see them.

A leafe store is Hive-partitioned Parquet (`<table>/run_id=<id>/*.parquet`),
but globbing those directories also reads runs that never committed (a
crashed or still-running writer). This module reads the store's catalog
(`_leafe/catalog.json`, written by `leafe catalog` and refreshed on each
commit once it exists), which lists exactly the data files of committed
runs, and registers the tables over those files only:

    import leafe_views as lv
    spark = lv.spark_session()                        # local[*], the settings leafe's queries need
    lv.register_spark(spark, "/data/leafe")           # views runs, episodes, steps, reflections, llm_calls, ancestry
    df = lv.run_query_spark(spark, "queries/rehearsal.sql", {"run": "e%"})  # rendered by `leafe query render`

    con = duckdb.connect(); lv.register_duckdb(con, "/data/leafe")
    frames = lv.polars_frames("/data/leafe")          # name -> polars.LazyFrame

From the shell (`python3 python/leafe_views.py --help`):

    leafe_views.py run --engine spark --store DIR --query queries/rehearsal.sql --param run=e%
    leafe_views.py parity --engine spark --master standalone --store DIR   # every query: leafe vs the engine, rows compared

No build step: standard library plus the engine you use (pyspark, duckdb,
polars). Spark reads S3 stores through s3a:// (hadoop-aws on its classpath);
this module passes the store URL through, turning s3:// into s3a:// for Spark.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import decimal
import glob
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TABLES = ("runs", "episodes", "steps", "reflections", "llm_calls", "ancestry")
CATALOG_PATH = "_leafe/catalog.json"

# Settings Spark needs to return leafe's rows (measured on Spark 4.3):
# - dynamic partition pruning off: with it on, export_preferences.sql hits
#   an internal error in Spark's optimiser;
# - partition column type inference off: run ids that look like numbers
#   must stay strings (the catalog's schema also says so);
# - UTC session time zone: timestamps are stored in UTC.
SPARK_SETTINGS = {
    "spark.sql.optimizer.dynamicPartitionPruning.enabled": "false",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


# ---------------------------------------------------------------- catalog --


def _local_path(store: str) -> str | None:
    if store.startswith("file://"):
        return store[len("file://"):]
    if "://" in store:
        return None
    return store


def load_catalog(store: str) -> dict:
    """The store's catalog. Local paths and file:// are read directly; s3://
    through pyarrow's S3 filesystem (AWS_* variables, as leafe uses)."""
    local = _local_path(store)
    if local is not None:
        path = os.path.join(local, CATALOG_PATH)
        if not os.path.exists(path):
            raise SystemExit(
                f"{path}: no catalog; run `leafe catalog --store {store}` first"
            )
        with open(path, encoding="utf-8") as f:
            catalog = json.load(f)
    elif store.startswith("s3://"):
        from pyarrow import fs  # only for S3 stores

        s3 = fs.S3FileSystem(
            endpoint_override=os.environ.get("AWS_ENDPOINT_URL"),
            region=os.environ.get("AWS_REGION", "us-east-1"),
            scheme="http" if os.environ.get("AWS_ALLOW_HTTP") == "true" else "https",
        )
        key = store[len("s3://"):].rstrip("/") + "/" + CATALOG_PATH
        with s3.open_input_stream(key) as f:
            catalog = json.loads(f.read())
    else:
        raise SystemExit(f"{store}: unsupported store URL (a path, file:// or s3://)")
    if catalog.get("format") != "leafe-catalog" or catalog.get("version") != 1:
        raise SystemExit(
            f"{store}: catalog format {catalog.get('format')!r} version "
            f"{catalog.get('version')!r} is not leafe-catalog 1; rebuild it with `leafe catalog`"
        )
    missing = [t for t in TABLES if t not in catalog.get("tables", {})]
    if missing:
        raise SystemExit(
            f"{store}: the catalog has no table {', '.join(missing)} (written by an older leafe); "
            f"rebuild it with `leafe catalog --store {store}`"
        )
    return catalog


def file_urls(store: str, catalog: dict, table: str, scheme: str | None = None) -> list[str]:
    """Full URLs of a table's committed files (s3:// becomes `scheme`:// if given)."""
    root = store.rstrip("/")
    if scheme and root.startswith("s3://"):
        root = scheme + "://" + root[len("s3://"):]
    return [f"{root}/{f['path']}" for f in catalog["tables"][table]["files"]]


def _columns(catalog: dict, table: str) -> list[tuple[str, str, bool]]:
    return [(c["name"], c["type"], c["nullable"]) for c in catalog["tables"][table]["columns"]]


# ------------------------------------------------------------------ Spark --

_SPARK_TYPES = {
    "utf8": "StringType",
    "binary": "BinaryType",
    "boolean": "BooleanType",
    "int32": "IntegerType",
    "int64": "LongType",
    "float32": "FloatType",
    "float64": "DoubleType",
    "timestamp_us": "TimestampType",
}


def spark_schema(catalog: dict, table: str):
    """The table's Spark schema: its stored columns, then run_id (string)."""
    from pyspark.sql import types as T

    fields = [
        T.StructField(name, getattr(T, _SPARK_TYPES[ty])(), nullable)
        for name, ty, nullable in _columns(catalog, table)
    ]
    fields.append(T.StructField(catalog["partition_column"], T.StringType(), False))
    return T.StructType(fields)


def spark_session(master: str = "local[*]", app: str = "leafe", conf: dict | None = None):
    """A SparkSession with the settings leafe's queries need."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("TZ", "UTC")
    if hasattr(time, "tzset"):
        time.tzset()
    builder = SparkSession.builder.master(master).appName(app)
    for k, v in {**SPARK_SETTINGS, **(conf or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def register_spark(spark, store: str, catalog: dict | None = None) -> dict:
    """Registers every table of the store as a temporary view over its
    committed files; returns the catalog used."""
    catalog = catalog or load_catalog(store)
    part = catalog["partition_column"]
    for table in TABLES:
        schema = spark_schema(catalog, table)
        files = file_urls(store, catalog, table, scheme="s3a")
        if files:
            base = files[0].split(f"/{part}=")[0]
            df = spark.read.schema(schema).option("basePath", base).parquet(*files)
            df = df.select(*[f.name for f in schema.fields])
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(table)
    return catalog


def run_statements_spark(spark, statements: list[str]):
    """Runs rendered statements in order; returns the last one's DataFrame."""
    df = None
    for sql in statements:
        df = spark.sql(sql)
    return df


def run_query_spark(spark, query: str, params: dict | None = None, leafe: str | None = None):
    """Renders a query file with `leafe query render --dialect spark` and runs
    it on Spark (the views must be registered); returns a DataFrame."""
    rendered = render(query, params or {}, "spark", leafe)
    return run_statements_spark(spark, [s["sql"] for s in rendered["statements"]])


@contextlib.contextmanager
def standalone_cluster(workers: int = 2, cores: int = 1, memory: str = "1g", timeout: float = 120):
    """A throwaway Spark standalone cluster on 127.0.0.1: one master and
    `workers` workers started with spark-class; yields the master URL and
    stops them all on exit."""
    import pyspark

    home = os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
    spark_class = os.path.join(home, "bin", "spark-class")
    env = dict(os.environ, SPARK_HOME=home, SPARK_LOCAL_IP="127.0.0.1", TZ="UTC")
    work = tempfile.mkdtemp(prefix="leafe-spark-")
    port = _free_port()
    procs = []

    def start(name, args):
        log = open(os.path.join(work, f"{name}.log"), "w")
        procs.append((subprocess.Popen([spark_class, *args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True), log))
        return log.name

    try:
        master_log = start("master", ["org.apache.spark.deploy.master.Master",
                                      "--host", "127.0.0.1", "--port", str(port),
                                      "--webui-port", str(_free_port())])
        url = f"spark://127.0.0.1:{port}"
        _wait_for(master_log, "I have been elected leader", 1, timeout, procs)
        for i in range(workers):
            start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker",
                                 "--host", "127.0.0.1", "--webui-port", str(_free_port()),
                                 "--cores", str(cores), "--memory", memory,
                                 "--work-dir", os.path.join(work, f"w{i}"), url])
        _wait_for(master_log, "Registering worker", workers, timeout, procs)
        yield url
    finally:
        for p, log in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
        for p, log in procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=20)
            log.close()
        shutil.rmtree(work, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(log: str, text: str, count: int, timeout: float, procs) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log, encoding="utf-8", errors="replace") as f:
            if f.read().count(text) >= count:
                return
        dead = [p for p, _ in procs if p.poll() is not None]
        if dead:
            break
        time.sleep(0.5)
    with open(log, encoding="utf-8", errors="replace") as f:
        tail = f.read()[-3000:]
    raise SystemExit(f"Spark standalone cluster did not start ({text!r} x{count} not seen):\n{tail}")


# ----------------------------------------------------------------- DuckDB --

_DUCKDB_TYPES = {
    "utf8": "VARCHAR",
    "binary": "BLOB",
    "boolean": "BOOLEAN",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "timestamp_us": "TIMESTAMPTZ",
}


def register_duckdb(con, store: str, catalog: dict | None = None) -> dict:
    """Registers every table as a DuckDB view over its committed files (S3
    stores need DuckDB's httpfs extension and its S3 settings)."""
    catalog = catalog or load_catalog(store)
    con.execute("SET TimeZone = 'UTC'")
    part = catalog["partition_column"]
    for table in TABLES:
        cols = _columns(catalog, table)
        files = file_urls(store, catalog, table)
        if files:
            listing = ", ".join(_sql_str(f) for f in files)
            source = (f"read_parquet([{listing}], hive_partitioning = true, "
                      f"union_by_name = true, hive_types = {{'{part}': VARCHAR}})")
            present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        else:
            source, present = "(SELECT 1 WHERE false)", set()
        select = [
            f'"{n}"' if n in present else f'CAST(NULL AS {_DUCKDB_TYPES[t]}) AS "{n}"'
            for n, t, _ in cols
        ]
        select.append(f'CAST("{part}" AS VARCHAR) AS "{part}"' if part in present
                      else f'CAST(NULL AS VARCHAR) AS "{part}"')
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT {", ".join(select)} FROM {source}')
    return catalog


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def run_statements_duckdb(con, statements: list[str]):
    """Runs rendered statements in order; returns the last one's relation."""
    for sql in statements[:-1]:
        con.execute(sql)
    return con.execute(statements[-1])


# ----------------------------------------------------------------- polars --


def polars_frames(store: str, catalog: dict | None = None) -> dict:
    """Every table as a polars LazyFrame over its committed files."""
    import polars as pl

    types = {
        "utf8": pl.String, "binary": pl.Binary, "boolean": pl.Boolean,
        "int32": pl.Int32, "int64": pl.Int64, "float32": pl.Float32,
        "float64": pl.Float64, "timestamp_us": pl.Datetime("us", "UTC"),
    }
    catalog = catalog or load_catalog(store)
    part = catalog["partition_column"]
    frames = {}
    for table in TABLES:
        schema = {n: types[t] for n, t, _ in _columns(catalog, table)}
        files = file_urls(store, catalog, table)
        if files:
            frames[table] = pl.scan_parquet(
                files, schema=schema, hive_partitioning=True,
                hive_schema={part: pl.String}, missing_columns="insert",
            )
        else:
            frames[table] = pl.LazyFrame(schema={**schema, part: pl.String})
    return frames


def polars_sql(store: str, catalog: dict | None = None):
    """A polars SQLContext with the tables registered (polars SQL runs most of
    leafe's queries; `parity --engine polars` says which it cannot)."""
    import polars as pl

    return pl.SQLContext(polars_frames(store, catalog), eager=False)


_VIEW = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+TEMPORARY\s+VIEW\s+(\S+)\s+AS\s+", re.I)


def run_statements_polars(ctx, statements: list[str]):
    """Runs rendered statements in a polars SQLContext: each input view is
    registered as the lazy frame of its body; returns the last one's frame."""
    for sql in statements[:-1]:
        m = _VIEW.match(sql)
        if not m:
            raise ValueError(f"not a view definition: {sql[:60]!r}")
        ctx.register(m.group(1), ctx.execute(sql[m.end():]))
    return ctx.execute(statements[-1])


# ------------------------------------------------------------------ leafe --


def _leafe_bin(leafe: str | None) -> str:
    return leafe or os.environ.get("LEAFE_BIN") or shutil.which("leafe") or "leafe"


def render(query: str, params: dict, dialect: str, leafe: str | None = None) -> dict:
    """`leafe query render --format json`: the query's statements, bound."""
    args = [_leafe_bin(leafe), "query", "render", query, "--dialect", dialect, "--format", "json"]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"leafe query render {query}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def declared_params(query: str) -> set[str]:
    """The parameters a query file declares (`-- @param NAME …`)."""
    with open(query, encoding="utf-8") as f:
        return set(re.findall(r"^\s*--\s*@param\s+(\w+)", f.read(), re.M))


def leafe_rows(store: str, query: str, params: dict, leafe: str | None = None):
    """Runs a query file with `leafe sql --format json`: (rows as dicts, seconds)."""
    args = [_leafe_bin(leafe), "sql", "--store", store, "--file", query, "--format", "json"]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"leafe sql --file {query}: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()], secs


# ----------------------------------------------------------------- parity --


def start_master(stack: contextlib.ExitStack, master: str) -> str:
    """`master` as a Spark master URL: `standalone[:N]` starts a throwaway
    cluster of N (default 2) workers, stopped when `stack` closes."""
    if master.startswith("standalone"):
        n = int(master.split(":")[1]) if ":" in master else 2
        return stack.enter_context(standalone_cluster(workers=n))
    return master


def open_engine(stack: contextlib.ExitStack, engine: str, store: str, catalog: dict,
                master: str, out=sys.stdout):
    """A Spark session or a DuckDB connection with the store's views, closed
    with `stack`: (spark, duckdb connection, master URL), one of them None."""
    if engine == "spark":
        master = start_master(stack, master)
        t0 = time.perf_counter()
        spark = spark_session(master, conf={"spark.driver.host": "127.0.0.1",
                                            "spark.driver.bindAddress": "127.0.0.1"})
        stack.callback(spark.stop)
        register_spark(spark, store, catalog)
        print(f"# spark {spark.version} at {master}: session and views in "
              f"{time.perf_counter() - t0:.1f} s", file=out)
        return spark, None, master
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        stack.callback(con.close)
        register_duckdb(con, store, catalog)
        print(f"# duckdb {duckdb.__version__}", file=out)
        return None, con, master
    if engine == "polars":
        import polars as pl

        print(f"# polars {pl.__version__}", file=out)
        return None, None, master
    raise SystemExit(f"unknown engine {engine!r} (spark, duckdb, polars)")


def query_files(directory: str, only: list[str]) -> list[str]:
    """The `*.sql` files of `directory`, sorted; only those named in `only` if given."""
    files = sorted(glob.glob(os.path.join(directory, "*.sql")))
    if only:
        files = [q for q in files if os.path.splitext(os.path.basename(q))[0] in only]
    if not files:
        raise SystemExit(f"no query files in {directory}" + (f" named {only}" if only else ""))
    return files


def _norm(v):
    """A value in a form two engines agree on: DECIMAL and DOUBLE alike,
    float32 noise and timestamp spelling removed."""
    if v is None or isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        return float(f"{f:.6g}")
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="microseconds")
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return str(v)


def _norm_leafe(v, kind: str):
    """A value from leafe's JSON output, read as the engine's column type."""
    if v is None:
        return None
    if kind == "timestamp" and isinstance(v, str):
        s = v.replace("Z", "").replace("+00:00", "")
        return _norm(_dt.datetime.fromisoformat(s))
    if kind == "binary" and isinstance(v, str):
        return v.lower()
    return _norm(v)


def _kind(type_name: str) -> str:
    t = type_name.lower()
    if "timestamp" in t or "datetime" in t:
        return "timestamp"
    if "binary" in t or "blob" in t:
        return "binary"
    return "other"


def compare(names: list[str], kinds: list[str], engine_rows, leafe_rows_) -> str | None:
    """None if the two results hold the same rows (as multisets), else why not."""
    if len(engine_rows) != len(leafe_rows_):
        return f"{len(leafe_rows_)} rows in leafe, {len(engine_rows)} in the engine"
    extra = set().union(*(r.keys() for r in leafe_rows_)) - set(names) if leafe_rows_ else set()
    if extra:
        return f"columns only leafe returns: {sorted(extra)}"
    a = sorted((tuple(_norm(x) for x in r) for r in engine_rows), key=repr)
    b = sorted((tuple(_norm_leafe(r.get(n), k) for n, k in zip(names, kinds))
                for r in leafe_rows_), key=repr)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and not _close(x, y):
            return f"row {i} (sorted) differs:\n  engine {x}\n  leafe  {y}"
    return None


def _close(x, y) -> bool:
    if len(x) != len(y):
        return False
    for p, q in zip(x, y):
        if isinstance(p, float) and isinstance(q, float):
            if not math.isclose(p, q, rel_tol=1e-5, abs_tol=1e-9):
                return False
        elif p != q:
            return False
    return True


def _statements(query: str, params: dict, engine: str, leafe: str | None):
    """The parameters of `params` that `query` declares, and its statements
    rendered for `engine` (inputs as views first, the query last)."""
    mine = {k: v for k, v in params.items() if k in declared_params(query)}
    rendered = render(query, mine, "spark" if engine == "spark" else "standard", leafe)
    return mine, [s["sql"] for s in rendered["statements"]]


def parity(store: str, engine: str, queries: list[str], params: dict, master: str,
           leafe: str | None = None, out=sys.stdout) -> list[dict]:
    """Runs every query through leafe and through the engine over the
    catalog; returns one record per query (rows, seconds, mismatch)."""
    catalog = load_catalog(store)
    results = []
    with contextlib.ExitStack() as stack:
        spark, con, master = open_engine(stack, engine, store, catalog, master, out)
        print(f"{'query':28} {'rows':>9} {'leafe s':>8} {engine + ' s':>9}  result", file=out)
        for q in queries:
            mine, statements = _statements(q, params, engine, leafe)
            t0 = time.perf_counter()
            if engine == "polars":
                # polars SQL cannot express every query: such a query is
                # reported as unsupported (with polars' reason), not as a
                # difference in rows.
                try:
                    df = run_statements_polars(polars_sql(store, catalog), statements).collect()
                except Exception as e:  # noqa: BLE001 - polars raises many kinds
                    name = os.path.splitext(os.path.basename(q))[0]
                    reason = " ".join(str(e).split())[:200]
                    results.append({"query": name, "rows": None, "leafe_s": None,
                                    "engine_s": None, "engine": engine, "master": master,
                                    "mismatch": None, "unsupported": reason})
                    print(f"{name:28} {'-':>9} {'-':>8} {'-':>9}  polars cannot run it: {reason}",
                          file=out)
                    continue
                engine_rows = df.rows()
                names = df.columns
                kinds = [_kind(str(t)) for t in df.dtypes]
            elif engine == "spark":
                df = run_statements_spark(spark, statements)
                engine_rows = [tuple(r) for r in df.collect()]
                names = [f.name for f in df.schema.fields]
                kinds = [_kind(f.dataType.typeName()) for f in df.schema.fields]
            else:
                rel = run_statements_duckdb(con, statements)
                names = [d[0] for d in rel.description]
                kinds = [_kind(str(d[1])) for d in rel.description]
                engine_rows = rel.fetchall()
            engine_secs = time.perf_counter() - t0
            rows, leafe_secs = leafe_rows(store, q, mine, leafe)
            problem = compare(names, kinds, engine_rows, rows)
            name = os.path.splitext(os.path.basename(q))[0]
            results.append({"query": name, "rows": len(engine_rows), "leafe_s": leafe_secs,
                            "engine_s": engine_secs, "engine": engine, "master": master,
                            "mismatch": problem})
            print(f"{name:28} {len(engine_rows):>9} {leafe_secs:>8.2f} {engine_secs:>9.2f}  "
                  f"{'same rows' if problem is None else 'DIFFERENT: ' + problem}", file=out)
            out.flush()
    return results


# ------------------------------------------------------------------ bench --


def duckdb_copy(store: str, statements: list[str], dest: str = "/dev/null") -> int:
    """What a DuckDB user runs: a connection, the store's views from its
    catalog, the statements, the last one's rows copied to `dest` as CSV
    with a header. Returns the rows copied."""
    import duckdb

    con = duckdb.connect()
    register_duckdb(con, store)
    for sql in statements[:-1]:
        con.execute(sql)
    rows = con.execute(f"COPY ({statements[-1]}) TO {_sql_str(dest)} (FORMAT CSV, HEADER)").fetchone()[0]
    con.close()
    return rows


def _leafe_count(store: str, query: str, params: dict, leafe: str | None = None) -> int:
    """The rows of a query file in leafe, counted as they stream (untimed)."""
    args = [_leafe_bin(leafe), "sql", "--store", store, "--file", query, "--format", "json"]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = sum(chunk.count(b"\n") for chunk in iter(lambda: proc.stdout.read(1 << 20), b""))
    err = proc.stderr.read().decode()
    if proc.wait() != 0:
        raise SystemExit(f"leafe sql --file {query}: {err.strip()}")
    return rows


def _timed(args: list[str]) -> float:
    """Runs a whole process, its output to /dev/null; its wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}…: {proc.stderr.strip()}")
    return secs


def bench(store: str, engine: str, queries: list[str], params: dict, master: str,
          leafe: str | None = None, out=sys.stdout, repeat: int = 1) -> list[dict]:
    """Times every query in leafe and in the engine, each writing all its
    rows as CSV to /dev/null.

    leafe: `leafe sql --format csv`, a whole process (start, commit markers,
    planning). DuckDB: a whole process too (`duckdb_copy`: Python, the
    import, the views from the catalog, `COPY … TO '/dev/null'`), and also
    the same COPY inside one open session (`session_s`). Spark: inside one
    session only (its start, 10-30 s, is printed apart), writing to its
    `noop` sink. With `repeat` > 1 each query runs that many times in each,
    alternating, and the medians are reported (every time kept under
    `*_runs`). Rows are DuckDB's COPY count, else leafe's (the parity test
    checks the engines return the same rows)."""
    catalog = load_catalog(store)
    results = []
    with contextlib.ExitStack() as stack:
        spark, con, master = open_engine(stack, engine, store, catalog, master, out)
        whole = "process" if engine == "duckdb" else "session"
        print(f"{'query':28} {'rows':>10} {'leafe s':>8} {engine + ' s':>9}  ratio"
              f"  ({engine}: whole {whole}; in-session)", file=out)
        for q in queries:
            mine, statements = _statements(q, params, engine, leafe)
            leafe_runs, engine_runs, session_runs = [], [], []
            rows = None
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                if engine == "spark":
                    df = run_statements_spark(spark, statements)
                    df.write.format("noop").mode("overwrite").save()
                else:
                    for sql in statements[:-1]:
                        con.execute(sql)
                    rows = con.execute(f"COPY ({statements[-1]}) TO '/dev/null' (FORMAT CSV, HEADER)"
                                       ).fetchone()[0]
                session_runs.append(time.perf_counter() - t0)
                if engine == "duckdb":
                    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                        json.dump(statements, f)
                    try:
                        secs = _timed([sys.executable, os.path.abspath(__file__), "copy-duckdb",
                                          "--store", store, "--statements", f.name])
                    finally:
                        os.unlink(f.name)
                    engine_runs.append(secs)
                else:
                    engine_runs.append(session_runs[-1])
                args = [_leafe_bin(leafe), "sql", "--store", store, "--file", q, "--format", "csv"]
                for k, v in mine.items():
                    args += ["--param", f"{k}={v}"]
                leafe_runs.append(_timed(args))
            if rows is None:
                rows = _leafe_count(store, q, mine, leafe)
            med = statistics.median
            leafe_secs, engine_secs = med(leafe_runs), med(engine_runs)
            name = os.path.splitext(os.path.basename(q))[0]
            results.append({"query": name, "rows": rows, "leafe_s": leafe_secs,
                            "engine_s": engine_secs, "session_s": med(session_runs),
                            "engine": engine, "master": master, "leafe_runs": leafe_runs,
                            "engine_runs": engine_runs, "session_runs": session_runs,
                            "mismatch": None})
            print(f"{name:28} {rows:>10} {leafe_secs:>8.2f} {engine_secs:>9.2f}  "
                  f"{leafe_secs / max(engine_secs, 1e-9):5.2f}  ({med(session_runs):.2f})", file=out)
            out.flush()
    return results


# -------------------------------------------------------------------- CLI --


def _params(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise SystemExit(f"--param {p!r} is not NAME=VALUE")
        out[k] = v
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="leafe_views.py",
        description="Read a leafe store from Spark, DuckDB or polars through its catalog "
                    "(committed runs only), and run leafe's query files there.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--store", default=os.environ.get("LEAFE_STORE", "./leafe-data"),
                       help="store URL (path, file://, s3://); default $LEAFE_STORE or ./leafe-data")
        p.add_argument("--leafe", help="the leafe binary (default $LEAFE_BIN, else leafe on PATH)")
        p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a query parameter (repeatable; each query takes those it declares)")
        p.add_argument("--master", default="local[2]",
                       help="Spark master: local[N], spark://host:port, or standalone[:N] "
                            "(start a throwaway cluster of N workers on 127.0.0.1; default 2)")

    run = sub.add_parser("run", help="run one query file on an engine and print its rows")
    common(run)
    run.add_argument("--engine", choices=["spark", "duckdb"], default="spark")
    run.add_argument("--query", required=True, help="a query file, e.g. queries/rehearsal.sql")
    run.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")

    par = sub.add_parser("parity", help="every query through leafe and through an engine; rows compared")
    common(par)
    par.add_argument("--engine", choices=["spark", "duckdb", "polars"], default="spark")
    par.add_argument("--queries", default="queries", help="directory of query files (default queries)")
    par.add_argument("--only", action="append", default=[], help="only these query names (repeatable)")
    par.add_argument("--json", help="also write the results as JSON to this file")

    bn = sub.add_parser("bench", help="time every query in leafe and in an engine (rows not compared)")
    common(bn)
    bn.add_argument("--engine", choices=["spark", "duckdb"], default="spark")
    bn.add_argument("--queries", default="queries", help="directory of query files (default queries)")
    bn.add_argument("--only", action="append", default=[], help="only these query names (repeatable)")
    bn.add_argument("--json", help="also write the results as JSON to this file")
    bn.add_argument("--repeat", type=int, default=1,
                    help="runs of each query in each engine, alternating; medians reported (default 1)")

    cp = sub.add_parser("copy-duckdb", help="run rendered statements in DuckDB, the last one's rows "
                                             "to a file as CSV (what bench times as DuckDB's whole process)")
    cp.add_argument("--store", required=True)
    cp.add_argument("--statements", required=True, help="a JSON file: the list of statements")
    cp.add_argument("--out", default="/dev/null")

    cnt = sub.add_parser("counts", help="rows per table as Spark, DuckDB and polars see them (JSON)")
    common(cnt)
    cnt.add_argument("--engine", action="append", choices=["spark", "duckdb", "polars"], default=[])

    a = ap.parse_args(argv)
    if a.cmd == "copy-duckdb":
        with open(a.statements, encoding="utf-8") as f:
            print(duckdb_copy(a.store, json.load(f), a.out))
        return 0
    params = _params(a.param)
    if a.cmd == "run":
        mine = {k: v for k, v in params.items() if k in declared_params(a.query)}
        if a.engine == "spark":
            with contextlib.ExitStack() as stack:
                spark = spark_session(start_master(stack, a.master))
                register_spark(spark, a.store)
                run_query_spark(spark, a.query, mine, a.leafe).show(a.limit, truncate=60)
                spark.stop()
        else:
            import duckdb

            con = duckdb.connect()
            register_duckdb(con, a.store)
            rendered = render(a.query, mine, "standard", a.leafe)
            rel = run_statements_duckdb(con, [s["sql"] for s in rendered["statements"]])
            names = [d[0] for d in rel.description]
            print("\t".join(names))
            for row in rel.fetchmany(a.limit):
                print("\t".join("" if v is None else str(v) for v in row))
        return 0
    if a.cmd == "bench":
        queries = query_files(a.queries, a.only)
        results = bench(a.store, a.engine, queries, params, a.master, a.leafe, repeat=a.repeat)
        if a.json:
            with open(a.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
        return 0
    if a.cmd == "parity":
        queries = query_files(a.queries, a.only)
        results = parity(a.store, a.engine, queries, params, a.master, a.leafe)
        if a.json:
            with open(a.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
        bad = [r["query"] for r in results if r["mismatch"]]
        if bad:
            print(f"{len(bad)} of {len(results)} queries differ: {', '.join(bad)}", file=sys.stderr)
            return 1
        skipped = [r["query"] for r in results if r.get("unsupported")]
        ran = len(results) - len(skipped)
        if skipped:
            print(f"all {ran} queries {a.engine} can run return the same rows in leafe and "
                  f"{a.engine}; {a.engine} cannot run {', '.join(skipped)}")
        else:
            print(f"all {len(results)} queries return the same rows in leafe and {a.engine}")
        return 0
    if a.cmd == "counts":
        catalog = load_catalog(a.store)
        out = {"catalog": {t: sum(f["rows"] for f in catalog["tables"][t]["files"]) for t in TABLES}}
        engines = a.engine or ["duckdb", "polars"]
        if "polars" in engines:
            frames = polars_frames(a.store, catalog)
            out["polars"] = {t: frames[t].select(__import__("polars").len()).collect().item()
                             for t in TABLES}
        if "duckdb" in engines:
            import duckdb

            con = duckdb.connect()
            register_duckdb(con, a.store, catalog)
            out["duckdb"] = {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
                             for t in TABLES}
        if "spark" in engines:
            spark = spark_session(a.master)
            register_spark(spark, a.store, catalog)
            out["spark"] = {t: spark.table(t).count() for t in TABLES}
            spark.stop()
        print(json.dumps(out))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The SQL engine: a compiled rule plan run as aggregates inside the database, where the data lives.

``validate_table(engine_or_url, "schema.table", contract)`` gives the same ``ValidationReport``
as ``validate`` on the same rows (counts, pass rates, statuses, rule ids), computed by the
database: one ``SELECT`` of aggregates per dataset, plus one ``GROUP BY`` per distinct key of the
uniqueness rules (joined back as a hash join, so rows failing "any hard rule" are counted in the
same pass), and one bounded ``LIMIT`` query per failing rule for its sample of values (masked
for PII columns exactly as the polars engine masks them). Only aggregates and at most
``MAX_SAMPLE`` values per rule leave the database.

Built on SQLAlchemy Core, not ibis: SQLAlchemy is already the stores' one SQL layer (no second
abstraction, no sqlglot / pyarrow round trips); its dialect packages reach Snowflake, Databricks,
Trino, Spark (pyhive), Synapse / SQL Server (built in), BigQuery and DuckDB with a URL; and the
plan stays SQL we control and read (``FILTER`` clauses, ``NULLIF`` for NaN, a hash-joined
``GROUP BY``). ibis would compile the same aggregates but leaves the dialect gaps that matter for
exactness (regex flavours, NaN ordering, collations) exactly where they are; they are handled
here, per dialect, in ``_Dialect``.

Exactness before coverage: a rule this engine cannot evaluate exactly as the polars engine does
(a regex the target dialect cannot match identically, a text column declared numeric that would
need parsing, an expression outside the translatable subset) is reported as not evaluated, with
the reason, never with a count that might be wrong. Verified dialects: ``postgresql`` and
``duckdb``; others run everything but regex rules and compare strings with their own collation.

What must not live here: rule compilation (rules.py), report assembly (validate.py), polars,
profiling (sqlprofile.py), regex translation (sqlregex.py). At ~600 lines it holds one thing:
the rule plan as SQL, type mapping to execution.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from dq_dagster.engine.rules import RulePlan, RuleSpec, compile_rules
from dq_dagster.engine.sqlregex import Untranslatable, translate
from dq_dagster.engine.validate import assemble_report
from dq_stores.models import DataContract, DatasetContract, DataType, Severity, ValidationReport
from dq_stores.models.common import utcnow
from dq_stores.models.reports import MAX_SAMPLE

__all__ = ["SqlEngineError", "open_engine", "split_table_name", "validate_table"]

_SAMPLE_SCAN = MAX_SAMPLE * 10


class SqlEngineError(RuntimeError):
    """The table cannot be reached or read (the message names the table)."""


# -- dialects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    name: str
    regex: str | None
    """Regex flavour of ``dq_dagster.engine.sqlregex`` (None: regex rules are not evaluated)."""
    filter_clause: bool
    """``count(*) FILTER (WHERE ...)``; otherwise ``sum(CASE WHEN ... THEN 1 ELSE 0 END)``."""
    binary_collation: str | None
    """A collation ordering text by code point (polars' order); None: the default already does."""

    def matches(self, text: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
        """``text`` contains a match of ``pattern`` (a search, as polars' ``str.contains``)."""
        if self.name == "postgresql":
            return text.op("~", is_comparison=True, return_type=sa.Boolean())(
                sa.literal(pattern, sa.String())
            )
        return sa.func.regexp_matches(text, sa.literal(pattern, sa.String()), type_=sa.Boolean())

    def nan(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``col`` with NaN as NULL (NaN is missing). Postgres and DuckDB hold NaN = NaN true."""
        return sa.func.nullif(col, sa.cast(sa.literal("NaN"), col.type), type_=col.type)


def _dialect(conn: Connection) -> _Dialect:
    name = conn.dialect.name
    if name == "postgresql":
        # Character classes are translated into code points: only a UTF-8 database holds them.
        utf8 = str(conn.exec_driver_sql("SHOW server_encoding").scalar()).upper() in ("UTF8", "UTF-8")
        return _Dialect(name, "postgres" if utf8 else None, True, "C")
    if name == "duckdb":
        return _Dialect(name, "re2", True, None)
    return _Dialect(name, None, False, None)


# -- column types --------------------------------------------------------------------------------


def _category(col_type: sa.types.TypeEngine[Any]) -> str:
    """text, int, float, numeric, bool, date, timestamp, timestamptz or other."""
    if isinstance(col_type, sa.Boolean):
        return "bool"
    if isinstance(col_type, sa.Integer):
        return "int"
    if isinstance(col_type, sa.Float):
        return "float"
    if isinstance(col_type, sa.Numeric):
        return "numeric"
    if isinstance(col_type, sa.DateTime):
        return "timestamptz" if col_type.timezone else "timestamp"
    if isinstance(col_type, sa.Date):
        return "date"
    if isinstance(col_type, sa.String) and not isinstance(col_type, sa.CHAR | sa.NCHAR):
        return "text"  # CHAR(n) pads with blanks: its values are not the text a frame would hold
    return "other"


# A declared type evaluated without conversion on these database types (others: not evaluated).
_EXACT: dict[DataType, frozenset[str]] = {
    DataType.STRING: frozenset({"text"}),
    DataType.INTEGER: frozenset({"int"}),
    DataType.DECIMAL: frozenset({"int", "float", "numeric"}),
    DataType.FLOAT: frozenset({"int", "float", "numeric"}),
    DataType.BOOLEAN: frozenset({"bool"}),
    DataType.DATE: frozenset({"date"}),
    DataType.DATETIME: frozenset({"timestamp", "timestamptz"}),
    DataType.TIMESTAMP: frozenset({"timestamp", "timestamptz"}),
}


@dataclass(frozen=True)
class _Col:
    name: str
    raw: sa.ColumnElement[Any]
    """The stored values, NaN as NULL."""
    category: str
    typed: sa.ColumnElement[Any] | None
    """The values in the declared type (None: not reachable exactly)."""
    why_untyped: str = ""
    converts: bool = False
    """``typed`` is a conversion that yields NULL where a value does not convert."""


def _columns(table: sa.TableClause, dataset: DatasetContract, dialect: _Dialect) -> dict[str, _Col]:
    declared = {c.column_id: c.data_type for c in dataset.columns}
    out: dict[str, _Col] = {}
    for column in table.columns:
        cat = _category(column.type)
        raw: sa.ColumnElement[Any] = column
        if cat in ("float", "numeric"):
            raw = dialect.nan(column)
        want = declared.get(column.name)
        if want is None or want == DataType.JSON or cat in _EXACT[want]:
            out[column.name] = _Col(column.name, raw, cat, raw)
        elif want == DataType.INTEGER and cat in ("float", "numeric"):
            # As polars: a finite whole number within int64 is that integer, anything else a
            # type failure (2**63 itself does not fit; floats are exact at these magnitudes).
            fits = sa.and_(raw == sa.func.floor(raw), raw >= -(2.0**63), raw < 2.0**63)
            typed = sa.case((fits, sa.cast(raw, sa.BigInteger())), else_=sa.null())
            out[column.name] = _Col(column.name, raw, cat, typed, converts=True)
        else:
            why = (
                f"column {column.name} is {column.type} in the database, declared {want.value}: "
                "converting it exactly as the polars engine does is not supported in SQL"
            )
            out[column.name] = _Col(column.name, raw, cat, None, why_untyped=why)
    return out


# -- rules as SQL ----------------------------------------------------------------------------------


_SQL_METRICS = ("null_values", "row_count")
"""Quality metrics this engine computes (the others are reported as not evaluated)."""


class _NotExact(Exception):
    """The rule cannot be evaluated exactly on this table: the message says why."""


@dataclass
class _SqlRule:
    spec: RuleSpec
    fail: sa.ColumnElement[bool] | None
    counted: sa.ColumnElement[Any] | None
    """The rule checked the rows where this is not NULL (None: every row)."""
    sample: sa.ColumnElement[Any] | None
    dup_keys: tuple[str, ...] = ()


def _typed(col: _Col) -> sa.ColumnElement[Any]:
    if col.typed is None:
        raise _NotExact(col.why_untyped)
    return col.typed


def _text(col: _Col) -> sa.ColumnElement[Any]:
    if col.category != "text":
        raise _NotExact(f"column {col.name} is not text in the database ({col.category})")
    return col.raw


def _literal(value: Any, col: _Col) -> sa.ColumnElement[Any]:
    if isinstance(value, datetime) and col.category == "timestamptz":
        value = value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, int) and col.category == "int":
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, int | float) and col.category in ("float", "int"):
        return sa.literal(float(value), sa.Double())
    if isinstance(value, int | float):
        return sa.literal(value)
    if isinstance(value, datetime):
        return sa.literal(value, sa.DateTime(timezone=col.category == "timestamptz"))
    if isinstance(value, date):
        return sa.literal(value, sa.Date())
    return sa.literal(str(value), sa.String())


def _ordered_text(expr: sa.ColumnElement[Any], col: _Col, dialect: _Dialect) -> sa.ColumnElement[Any]:
    if col.category == "text" and dialect.binary_collation:
        return expr.collate(dialect.binary_collation)
    return expr


def _rule(spec: RuleSpec, cols: Mapping[str, _Col], dialect: _Dialect) -> _SqlRule:
    p = spec.params
    kind = spec.kind
    if kind in ("not_null", "null_values"):
        keys = tuple(p.get("keys") or spec.columns)
        return _SqlRule(spec, sa.or_(*(cols[k].raw.is_(None) for k in keys)), None, None)
    if kind == "row_count":
        return _SqlRule(spec, None, None, None)
    if kind == "unique":
        keys = tuple(p.get("keys") or spec.columns)
        key_exprs = [_typed(cols[k]) for k in keys]
        complete = sa.and_(*(t.is_not(None) for t in key_exprs))
        counted = key_exprs[0] if len(keys) == 1 else _when(complete)
        return _SqlRule(spec, None, counted, key_exprs[0] if len(keys) == 1 else None, dup_keys=keys)
    col = cols[spec.columns[0]] if spec.columns else None
    if kind == "data_type":
        assert col is not None
        typed = _typed(col)
        if not col.converts:
            return _SqlRule(spec, None, col.raw, None)  # the stored type is the declared one
        return _SqlRule(spec, sa.and_(col.raw.is_not(None), typed.is_(None)), col.raw, col.raw)
    if kind == "compare":
        assert col is not None
        typed = _ordered_text(_typed(col), col, dialect)
        if col.category == "text" and dialect.binary_collation is None and dialect.name != "duckdb":
            raise _NotExact(f"text order in {dialect.name} is its collation's, not code-point order")
        lit = _literal(p["value"], col)
        bad = typed < lit if p["op"] == "min" else typed > lit
        return _SqlRule(spec, bad, col.typed, col.raw)
    if kind == "regex":
        assert col is not None
        if dialect.regex is None:
            raise _NotExact(f"no exact translation of the contract's regex dialect into {dialect.name}'s")
        try:
            pattern = translate(str(p["pattern"]), dialect.regex)
        except Untranslatable as exc:
            raise _NotExact(f"regex not exactly expressible in {dialect.name}: {exc}") from exc
        text = _text(col)
        return _SqlRule(spec, sa.not_(dialect.matches(text, pattern)), text, col.raw)
    if kind == "allowed":
        assert col is not None
        typed = _typed(col)
        values = list(p["values"])
        lits: list[sa.ColumnElement[Any]]
        if col.category == "text":
            lits = [sa.literal(str(v), sa.String()) for v in values]
        else:
            if col.category == "int":
                values = [int(v) for v in values if float(v).is_integer()]
            lits = [_literal(v, col) for v in values]
        bad = sa.not_(typed.in_(lits)) if lits else sa.true()
        return _SqlRule(spec, sa.and_(typed.is_not(None), bad), typed, col.raw)
    if kind == "length":
        assert col is not None
        text = _text(col)
        n = sa.func.length(text)
        bound = sa.literal(int(p["bound"]), sa.Integer())
        bad = n < bound if p["op"] == "min" else n > bound
        return _SqlRule(spec, bad, text, col.raw)
    if kind == "expression":
        cond = _expr(json.loads(p["expr"].meta.serialize(format="json")), cols)
        sample = cols[p["sample"]].raw if p.get("sample") in cols else None
        return _SqlRule(spec, sa.not_(cond), _when(cond.is_not(None)), sample)
    raise _NotExact(f"rule kind {kind!r} has no SQL form")


def _when(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    """1 where ``cond`` holds, else NULL: counted by ``count()``."""
    return sa.case((cond, sa.literal(1, sa.Integer())), else_=sa.null())


def _count_if(cond: sa.ColumnElement[Any], dialect: _Dialect) -> sa.ColumnElement[Any]:
    if dialect.filter_clause:
        return sa.func.count().filter(cond)
    return sa.func.sum(sa.case((cond, 1), else_=0))


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Plus": lambda a, b: a + b,
    "Minus": lambda a, b: a - b,
    "Multiply": lambda a, b: a * b,
    "TrueDivide": lambda a, b: sa.cast(a, sa.Double()) / sa.cast(b, sa.Double()),
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
    "Lt": lambda a, b: a < b,
    "LtEq": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "GtEq": lambda a, b: a >= b,
    "And": lambda a, b: sa.and_(a, b),
    "LogicalAnd": lambda a, b: sa.and_(a, b),
    "Or": lambda a, b: sa.or_(a, b),
    "LogicalOr": lambda a, b: sa.or_(a, b),
}


def _expr(node: Any, cols: Mapping[str, _Col]) -> Any:
    """A polars expression tree (its JSON form) as SQL, for the subset whose meaning is the same
    in SQL: columns, number / text / boolean literals, arithmetic (``/`` is true division in
    both), comparisons, AND / OR / NOT, IS [NOT] NULL, abs, coalesce. Anything else: _NotExact.
    """
    if isinstance(node, dict) and len(node) == 1:
        ((key, body),) = node.items()
        if key == "Column":
            if body not in cols:
                raise _NotExact(f"column {body} is not in the table")
            return _typed(cols[body])
        if key == "Literal":
            return _literal_node(body)
        if key == "BinaryExpr":
            op = body["op"]
            if op not in _BINARY:
                raise _NotExact(f"operator {op} has no exact SQL form")
            return _BINARY[op](_expr(body["left"], cols), _expr(body["right"], cols))
        if key == "Cast" and body.get("dtype") == {"Literal": "Boolean"}:
            return _expr(body["expr"], cols)
        if key == "Function":
            fn, args = body["function"], [_expr(a, cols) for a in body["input"]]
            if fn == "Abs":
                return sa.func.abs(args[0])
            if fn == "Coalesce":
                return sa.func.coalesce(*args)
            if fn == {"Boolean": "Not"}:
                return sa.not_(args[0])
            if fn == {"Boolean": "IsNull"}:
                return args[0].is_(None)
            if fn == {"Boolean": "IsNotNull"}:
                return args[0].is_not(None)
            raise _NotExact(f"function {json.dumps(fn)} has no exact SQL form")
    raise _NotExact(f"expression node {str(node)[:60]} has no exact SQL form")


def _literal_node(body: Any) -> Any:
    kind, value = next(iter(body.items()))
    inner_kind, inner = next(iter(value.items())) if isinstance(value, dict) else (kind, value)
    if inner_kind == "Int":
        return sa.literal(int(inner), sa.BigInteger())
    if inner_kind in ("Float", "Float64", "Float32"):
        if not math.isfinite(float(inner)):
            raise _NotExact("non-finite literal")
        return sa.literal(float(inner), sa.Double())
    if inner_kind == "String":
        return sa.literal(str(inner), sa.String())
    if inner_kind == "Boolean":
        return sa.literal(bool(inner), sa.Boolean())
    raise _NotExact(f"literal {inner_kind} has no exact SQL form")


# -- running it ----------------------------------------------------------------------------------------

_ANY_KEYS = 100_000
"""At most this many duplicated keys are sent back to Postgres as an array; more: a CTE join."""


def _duplicated_keys(conn: Connection, table: sa.TableClause, key: sa.ColumnElement[Any]) -> list[Any] | None:
    """The values of ``key`` occurring more than once (None: more than ``_ANY_KEYS`` of them)."""
    query = (
        sa.select(key).select_from(table).where(key.is_not(None)).group_by(key)
        .having(sa.func.count() > 1).limit(_ANY_KEYS + 1)
    )  # fmt: skip
    found = list(conn.execute(query).scalars())
    return None if len(found) > _ANY_KEYS else found


def split_table_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); ``table`` -> (None, table)."""
    parts = name.split(".")
    if len(parts) == 1 and parts[0]:
        return None, parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise ValueError(f"table {name!r}: expected 'schema.table' or 'table'")


def open_engine(url: str | Engine) -> Engine:
    """An engine for ``url`` (a SQLAlchemy URL; ``postgresql://`` means psycopg 3)."""
    if isinstance(url, Engine):
        return url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url)


_TYPE_WORDS: tuple[tuple[str, str], ...] = (
    # (prefix of information_schema.columns.data_type, lower-cased; category): first match wins
    ("timestamp with time zone", "timestamptz"),
    ("timestamptz", "timestamptz"),
    ("timestamp", "timestamp"),
    ("datetime", "timestamp"),
    ("date", "date"),
    ("boolean", "bool"),
    ("bool", "bool"),
    ("double", "float"),
    ("float", "float"),
    ("real", "float"),
    ("numeric", "numeric"),
    ("decimal", "numeric"),
    ("bigint", "int"),
    ("integer", "int"),
    ("smallint", "int"),
    ("tinyint", "int"),
    ("hugeint", "int"),
    ("int", "int"),
    ("character varying", "text"),
    ("varchar", "text"),
    ("nvarchar", "text"),
    ("text", "text"),
    ("string", "text"),
)
_SA_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "timestamptz": sa.DateTime(timezone=True),
    "timestamp": sa.DateTime(),
    "date": sa.Date(),
    "bool": sa.Boolean(),
    "float": sa.Double(),
    "numeric": sa.Numeric(),
    "int": sa.BigInteger(),
    "text": sa.String(),
    "other": sa.types.NullType(),
}


def _type_of(data_type: str) -> sa.types.TypeEngine[Any]:
    lowered = data_type.strip().lower()
    for prefix, category in _TYPE_WORDS:
        if lowered.startswith(prefix):
            return _SA_TYPES[category]
    return _SA_TYPES["other"]  # CHAR(n) (blank-padded), arrays, json, ...


def _reflect(conn: Connection, table: str) -> sa.TableClause:
    """The table's columns and their types, from ``information_schema`` (every SQL engine has
    it; SQLAlchemy's own reflection is dialect-specific and fails on some, e.g. DuckDB).
    """
    schema, name = split_table_name(table)
    cols = sa.table(
        "columns",
        sa.column("table_schema"),
        sa.column("table_name"),
        sa.column("column_name"),
        sa.column("data_type"),
        sa.column("ordinal_position"),
        schema="information_schema",
    )
    query = sa.select(cols.c.column_name, cols.c.data_type).where(cols.c.table_name == name)
    query = query.where(cols.c.table_schema == (schema if schema is not None else sa.func.current_schema()))
    try:
        rows = conn.execute(query.order_by(cols.c.ordinal_position)).all()
    except sa.exc.SQLAlchemyError as exc:
        raise SqlEngineError(
            f"cannot read the columns of table {table!r}: {str(exc).splitlines()[0]}"
        ) from exc
    if not rows:
        raise SqlEngineError(f"table {table!r} does not exist (or has no columns visible to this login)")
    return sa.table(name, *(sa.column(str(n), _type_of(str(t))) for n, t in rows), schema=schema)


def validate_table(
    source: str | Engine,
    table: str,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    samples: bool = True,
) -> ValidationReport:
    """Validate ``table`` (``schema.table``) in place, in the database ``source`` (URL or engine).

    The report equals ``validate`` of the same rows (samples may be other failing values: SQL
    has no row order); its ``metadata["engine"]`` is ``sql:<dialect>``. ``samples=False`` skips
    the per-rule sample queries.
    """
    started = utcnow()
    plan = contract if isinstance(contract, RulePlan) else compile_rules(contract, dataset_type)
    engine = open_engine(source)
    try:
        with engine.connect() as conn:
            return _validate(conn, table, plan, started, samples=samples)
    except sa.exc.DBAPIError as exc:
        raise SqlEngineError(f"validating {table!r}: {str(exc.orig).splitlines()[0]}") from exc
    finally:
        if not isinstance(source, Engine):
            engine.dispose()


def _validate(
    conn: Connection, table_name: str, plan: RulePlan, started: datetime, *, samples: bool
) -> ValidationReport:
    dialect = _dialect(conn)
    table = _reflect(conn, table_name)
    cols = _columns(table, plan.dataset, dialect)

    rules: list[_SqlRule] = []
    pending: dict[str, tuple[str, bool]] = {}
    for spec in plan.rules:
        if spec.build is None:
            continue
        if spec.kind not in _SQL_METRICS and (
            spec.threshold is not None or spec.not_evaluated is not None or spec.kind == "sql"
        ):
            # Quality metrics (ODCS) other than null values and row counts are computed by the
            # polars engine only: their exact meaning (text-or-typed matches, extra copies,
            # polars SQL) has no SQL form here, and a count that differs is worse than none.
            why = spec.not_evaluated or f"quality metric {spec.kind} is not computed in {dialect.name}"
            pending[spec.rule_id] = (f"not evaluated: {why}", False)
            continue
        missing = [c for c in spec.columns if c not in cols]
        if missing:
            names = ", ".join(missing)
            if spec.vacuous_if_missing:
                pending[spec.rule_id] = (f"optional column {names} absent: nothing to check", True)
            else:
                pending[spec.rule_id] = (f"not evaluated: column {names} missing", False)
            continue
        try:
            rules.append(_rule(spec, cols, dialect))
        except _NotExact as exc:
            pending[spec.rule_id] = (f"not evaluated in {dialect.name}: {exc}", False)

    # Uniqueness: one GROUP BY per distinct key. On Postgres the duplicated keys come back first
    # (when there are at most _ANY_KEYS of them) and the main scan tests ``key = ANY(:keys)``, a
    # hashed lookup that parallel workers share; joining a CTE instead makes every parallel
    # worker recompute the whole GROUP BY. Elsewhere (and for composite keys) the GROUP BY is a
    # CTE hash-joined back, so each row still knows its flag in the one main scan.
    source: sa.FromClause = table
    dup_flag: dict[tuple[str, ...], sa.ColumnElement[bool]] = {}
    for i, keys in enumerate(dict.fromkeys(r.dup_keys for r in rules if r.dup_keys)):
        exprs = [_typed(cols[k]) for k in keys]
        if dialect.name == "postgresql" and len(keys) == 1:
            found = _duplicated_keys(conn, table, exprs[0])
            if found is not None:
                param = sa.bindparam(f"dq_dup{i}", found, type_=postgresql.ARRAY(exprs[0].type))
                dup_flag[keys] = exprs[0] == sa.any_(param) if found else sa.false()
                continue
        dups = (
            sa.select(*(e.label(f"k{j}") for j, e in enumerate(exprs)))
            .where(*(e.is_not(None) for e in exprs))
            .group_by(*exprs)
            .having(sa.func.count() > 1)
            .cte(f"dq_dup{i}")
        )
        on = sa.and_(*(_typed(cols[k]) == dups.c[f"k{j}"] for j, k in enumerate(keys)))
        source = source.outerjoin(dups, on)
        dup_flag[keys] = dups.c["k0"].is_not(None)
    for r in rules:
        if r.dup_keys:
            r.fail = dup_flag[r.dup_keys]

    # Every failure mask and counted value is a column of one subquery, so the aggregates (and
    # the any-hard-rule count) read a computed boolean instead of evaluating a regex again;
    # identical masks (a primary key's and its column's not-null rule) are computed once.
    inner: list[sa.ColumnElement[Any]] = []
    labels: dict[str, str] = {}

    def column_for(expr: sa.ColumnElement[Any], prefix: str) -> str:
        compiled = expr.compile(conn)
        key = prefix + str(compiled) + repr(sorted(compiled.params.items(), key=lambda kv: kv[0]))
        if key not in labels:
            labels[key] = f"{prefix}{len(inner)}"
            inner.append(expr.label(labels[key]))
        return labels[key]

    counted_col: dict[int, str | None] = {}
    mask_col: dict[int, str] = {}
    for k, r in enumerate(rules):
        counted_col[k] = column_for(r.counted, "a") if r.counted is not None else None
        if r.fail is not None:
            mask_col[k] = column_for(r.fail, "m")
    staged = sa.select(*inner).select_from(source).subquery("dq_rows") if inner else None

    aggs: list[sa.ColumnElement[Any]] = [sa.func.count().label("__rows")]
    hard: list[sa.ColumnElement[bool]] = []
    for k, r in enumerate(rules):
        name = counted_col[k]
        assert staged is not None or name is None
        aggs.append(
            (sa.func.count(staged.c[name]) if staged is not None and name else sa.func.count()).label(f"c{k}")
        )
        if k in mask_col and staged is not None:
            mask = staged.c[mask_col[k]]
            aggs.append(_count_if(mask, dialect).label(f"f{k}"))
            t = r.spec.threshold
            if r.spec.severity == Severity.HARD and (t is None or t.zero_tolerance):
                hard.append(mask)
    if hard:
        aggs.append(_count_if(sa.or_(*dict.fromkeys(hard)), dialect).label("__rows_failed"))
    query = sa.select(*aggs).select_from(staged if staged is not None else source)
    row = dict(conn.execute(query).mappings().one())

    if samples:
        for k, r in enumerate(rules):
            if r.fail is None or r.sample is None or not row.get(f"f{k}"):
                continue
            first = (
                sa.select(r.sample.label("v"))
                .select_from(source)
                .where(r.fail)
                .limit(_SAMPLE_SCAN)
                .subquery()
            )
            query = sa.select(first.c.v).distinct().limit(MAX_SAMPLE)
            row[f"s{k}"] = [v for (v,) in conn.execute(query)]
    rule_keys = {r.spec.rule_id: k for k, r in enumerate(rules)}
    columns = [c.name for c in table.columns]
    return assemble_report(plan, columns, row, rule_keys, pending, started, engine=f"sql:{dialect.name}")

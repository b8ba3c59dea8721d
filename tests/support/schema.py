"""A database's schema as plain, sorted text, read from PostgreSQL's catalogue.

What `describe_schema` lists, for the `public` schema: the applied migrations; every
table with its columns in order (type, NOT NULL, DEFAULT, identity or generated),
constraints and indexes (with PostgreSQL's own definitions) and privileges; sequences;
views, functions, triggers, enum and domain types, extensions, if there are any; and the
schema's own privileges. Role names that differ between machines are replaced: the
worker's role by `app`; privileges an object's owner holds are left out (the owner may
do everything anyway). NOT NULL constraints are read from the columns, so PostgreSQL 18's
catalogued not-null constraints do not change the text.

No pg_dump: plain catalogue queries over asyncpg, so the same PostgreSQL client the
worker uses is all it takes.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

TABLES = """
SELECT c.oid, c.relname, c.relpersistence = 'u' AS unlogged, c.relkind = 'p' AS partitioned
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid) AS default,
       CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END AS identity,
       a.attgenerated = 's' AS generated
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# contype 'n': PostgreSQL 18 catalogues NOT NULL as constraints; the columns show them.
CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE conrelid = $1 AND contype <> 'n'
ORDER BY conname
"""

INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1
ORDER BY c.relname
"""

TRIGGERS = """
SELECT tgname, pg_get_triggerdef(oid) AS definition
FROM pg_trigger
WHERE tgrelid = $1 AND NOT tgisinternal
ORDER BY tgname
"""

# Privileges of everyone but the object's owner; `grantee` 0 is PUBLIC.
RELATION_PRIVILEGES = """
SELECT DISTINCT
       CASE WHEN p.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(p.grantee) END AS grantee,
       p.privilege_type
FROM pg_class c, aclexplode(c.relacl) p
WHERE c.oid = $1 AND p.grantee <> c.relowner
ORDER BY 1, 2
"""

SCHEMA_PRIVILEGES = """
SELECT DISTINCT
       CASE WHEN p.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(p.grantee) END AS grantee,
       p.privilege_type
FROM pg_namespace n, aclexplode(n.nspacl) p
WHERE n.nspname = 'public' AND p.grantee <> n.nspowner
  AND pg_get_userbyid(p.grantee) <> 'pg_database_owner'
ORDER BY 1, 2
"""

SEQUENCES = """
SELECT c.oid, c.relname, format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       (SELECT t.relname || '.' || a.attname
        FROM pg_depend d
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owned_by
FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relnamespace = 'public'::regnamespace
ORDER BY c.relname
"""

VIEWS = """
SELECT c.oid, c.relname, c.relkind = 'm' AS materialized, pg_get_viewdef(c.oid) AS definition
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
ORDER BY c.relname
"""

# Functions and procedures of the migrations, not of an extension.
FUNCTIONS = """
SELECT p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) AS definition
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""

ENUMS = """
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typnamespace = 'public'::regnamespace
GROUP BY t.typname
ORDER BY t.typname
"""

DOMAINS = """
SELECT t.typname, format_type(t.typbasetype, t.typtypmod) AS type, t.typnotnull,
       t.typdefault,
       array(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
             WHERE c.contypid = t.oid AND c.contype <> 'n' ORDER BY c.conname) AS checks
FROM pg_type t
WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'd'
ORDER BY t.typname
"""

EXTENSIONS = """
SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname
"""

MIGRATIONS = """
SELECT version FROM schema_migration ORDER BY version
"""


def _grants(rows: Iterable[asyncpg.Record], app_role: str | None) -> list[str]:
    by_grantee: dict[str, list[str]] = {}
    for row in rows:
        grantee = "app" if row["grantee"] == app_role else row["grantee"]
        by_grantee.setdefault(grantee, []).append(row["privilege_type"])
    return [f"  grant {who}: {', '.join(sorted(what))}" for who, what in sorted(by_grantee.items())]


def _column(row: asyncpg.Record) -> str:
    line = f"  column {row['attname']} {row['type']}"
    if row["attnotnull"]:
        line += " NOT NULL"
    if row["identity"]:
        line += f" GENERATED {row['identity']} AS IDENTITY"
    elif row["generated"]:
        line += f" GENERATED ALWAYS AS ({row['default']}) STORED"
    elif row["default"] is not None:
        line += f" DEFAULT {row['default']}"
    return line


def _indented(definition: str) -> str:
    return "\n".join("    " + line if line else "" for line in definition.strip().splitlines())


async def describe_schema(conn: asyncpg.Connection, app_role: str | None = None) -> str:
    """The `public` schema of the database `conn` is connected to, as sorted text."""
    # Definitions name other tables unqualified only when the search path finds them.
    await conn.execute("SET search_path = public")
    out: list[str] = []
    if await conn.fetchval("SELECT to_regclass('schema_migration') IS NOT NULL"):
        versions = [r["version"] for r in await conn.fetch(MIGRATIONS)]
        out += ["migrations applied:", *(f"  {v}" for v in versions), ""]
    for ext in await conn.fetch(EXTENSIONS):
        out += [f"extension {ext['extname']} {ext['extversion']}", ""]
    out += ["schema public", *_grants(await conn.fetch(SCHEMA_PRIVILEGES), app_role), ""]
    for table in await conn.fetch(TABLES):
        oid = table["oid"]
        kind = "partitioned table" if table["partitioned"] else "table"
        unlogged = " UNLOGGED" if table["unlogged"] else ""
        out.append(f"{kind} {table['relname']}{unlogged}")
        out += [_column(r) for r in await conn.fetch(COLUMNS, oid)]
        out += [
            f"  constraint {r['conname']} {r['definition']}"
            for r in await conn.fetch(CONSTRAINTS, oid)
        ]
        out += [f"  index {r['relname']} {r['definition']}" for r in await conn.fetch(INDEXES, oid)]
        out += [
            f"  trigger {r['tgname']} {r['definition']}" for r in await conn.fetch(TRIGGERS, oid)
        ]
        out += _grants(await conn.fetch(RELATION_PRIVILEGES, oid), app_role)
        out.append("")
    for seq in await conn.fetch(SEQUENCES):
        cycle = "CYCLE" if seq["seqcycle"] else "NO CYCLE"
        owned = f" OWNED BY {seq['owned_by']}" if seq["owned_by"] else ""
        out.append(
            f"sequence {seq['relname']} AS {seq['type']} START {seq['seqstart']} "
            f"INCREMENT {seq['seqincrement']} MINVALUE {seq['seqmin']} "
            f"MAXVALUE {seq['seqmax']} CACHE {seq['seqcache']} {cycle}{owned}"
        )
        out += _grants(await conn.fetch(RELATION_PRIVILEGES, seq["oid"]), app_role)
        out.append("")
    for view in await conn.fetch(VIEWS):
        kind = "materialized view" if view["materialized"] else "view"
        out += [f"{kind} {view['relname']}", _indented(view["definition"])]
        out += _grants(await conn.fetch(RELATION_PRIVILEGES, view["oid"]), app_role)
        out.append("")
    for fn in await conn.fetch(FUNCTIONS):
        out += [f"function {fn['name']}", _indented(fn["definition"]), ""]
    for enum in await conn.fetch(ENUMS):
        out += [f"enum {enum['typname']} ({', '.join(enum['labels'])})", ""]
    for domain in await conn.fetch(DOMAINS):
        line = f"domain {domain['typname']} {domain['type']}"
        line += " NOT NULL" if domain["typnotnull"] else ""
        line += f" DEFAULT {domain['typdefault']}" if domain["typdefault"] is not None else ""
        out += [line, *(f"  {check}" for check in domain["checks"]), ""]
    return "\n".join(out)

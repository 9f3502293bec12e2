"""`tprm data ...` and `tprm store ...`: the data sets of a store and its maintenance."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tprm.cli_common import JsonOpt, StoreOpt, err, out
from tprm.cli_common import print_json as _json
from tprm.cli_common import service as _svc

store_app = typer.Typer(help="Maintain the store.", no_args_is_help=True)
data_app = typer.Typer(help="Data sets: what is present, fetch the torchvision ones.", no_args_is_help=True)


# -- data sets -----------------------------------------------------------------------------------
@data_app.command("list")
def data_list(store: StoreOpt = None, as_json: JsonOpt = False):
    """Show which data sets are in the store's data folder (recipes without dataset.root read there)."""
    svc = _svc(store)
    rows = svc.admin.data_list()
    if as_json:
        _json(rows)
        return
    out.print(f"data folder: {svc.admin.data_root()}")
    for r in rows:
        size = f"{r['bytes'] / 1e6:.1f} MB" if r["bytes"] else ""
        where = r["note"] if r["folder"] is None else f"{r['note']:<15} {size:>7}  {r['folder']}"
        out.print(f"  {r['name']:<12} {where}", markup=False)


@data_app.command("fetch")
def data_fetch(name: Annotated[str, typer.Argument(help="A data set of `tprm data list` (cifar10, mnist, stl10, ...).")],
               source: Annotated[Optional[str], typer.Option("--from", help="A folder or .tar.gz holding the files (offline); default: download.")] = None,
               store: StoreOpt = None):
    """Put a torchvision data set into the store's data folder (download, or copy from --from)."""
    status = _svc(store).admin.data_fetch(name, source, progress=lambda msg: err.print(msg, markup=False))
    flag = f" ({status['note']})" if status["official"] is False else ""
    out.print(f"{name}: {'present' if status['present'] else status['note']} in {status['folder']}{flag}",
              markup=False)


# -- store ---------------------------------------------------------------------------------------
@store_app.command("migrate")
def store_migrate(store: StoreOpt = None):
    """Upgrade an older store to this version's schema."""
    old, new = _svc(store).admin.migrate()
    out.print(f"store schema version {old} -> {new}" if old != new
              else f"store schema version {new}: already up to date")


@store_app.command("gc")
def store_gc(store: StoreOpt = None,
             dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be moved.")] = False,
             force: Annotated[bool, typer.Option("--force", help="Collect even more than --max-fraction of the artifacts.")] = False,
             purge: Annotated[bool, typer.Option("--purge", help="Then empty the store's trash/ for good.")] = False,
             max_fraction: Annotated[Optional[float], typer.Option("--max-fraction", help="Refuse to collect more than this share of the artifact files (default 0.10).")] = None):
    """Move files no job owns (artifacts, logs, old temp files) to the store's trash/.

    Refuses when the db does not validate (run `tprm store check` / `tprm store repair`)."""
    r = _svc(store).admin.gc(dry_run=dry_run, force=force, purge=purge, max_fraction=max_fraction)
    verb = "would move" if dry_run else "moved"
    out.print(f"{verb} {len(r['moved'])} orphaned file(s) to {r['trash']}", markup=False)
    if purge:
        out.print(f"{'would purge' if dry_run else 'purged'} {r['purged']} file(s) from the trash",
                  markup=False)


@store_app.command("check")
def store_check(store: StoreOpt = None, as_json: JsonOpt = False,
                quick: Annotated[bool, typer.Option("--quick", help="Compare file sizes only, no checksums.")] = False):
    """Validate the db and cross-check artifacts: missing, orphaned, checksum mismatch.

    Exit 0 when all is well, 1 when something is wrong."""
    r = _svc(store).admin.check(deep=not quick)
    if as_json:
        _json(r)
    else:
        for p in r["malformed"][:20]:
            out.print(f"malformed record {p['text']}", markup=False)
        if r["db"]["error"]:
            out.print(f"db: {r['db']['error']}", markup=False)
        a = r["artifacts"]
        for key in ("missing", "checksum_mismatch"):
            for row in a[key][:20]:
                out.print(f"{key.replace('_', ' ')}: {row['label'] or row['job']}: {row['path']} "
                          f"({row['problem']})", markup=False)
        for path in a["orphaned"][:20]:
            out.print(f"orphaned: {path}", markup=False)
        for h in a["no_metadata"][:20]:
            out.print(f"no metadata file: job {h}", markup=False)
        out.print(r["summary"], markup=False)
    raise typer.Exit(0 if r["ok"] else 1)


@store_app.command("repair")
def store_repair(store: StoreOpt = None, as_json: JsonOpt = False):
    """Rebuild the job index from the artifact metadata files and the newest valid backup."""
    r = _svc(store).admin.repair()
    if as_json:
        _json(r)
        return
    if r["damaged_copy"]:
        out.print(f"kept the damaged db as {r['damaged_copy']}", markup=False)
    for text in r["dropped"][:20]:
        out.print(f"dropped malformed record {text}", markup=False)
    for text in r["skipped_metadata"][:20]:
        out.print(f"not restored: {text}", markup=False)
    if r["requeued"]:
        out.print(f"re-queued {len(r['requeued'])} job(s) whose artifacts are missing or damaged: "
                  f"{', '.join(r['requeued'][:5])}{' ...' if len(r['requeued']) > 5 else ''}",
                  markup=False)
    backup = ", ".join(f"{n} {t}" for t, n in r["from_backup"].items()) or "nothing"
    out.print(f"repaired {r['store']}: {r['jobs']} job(s) in the index now (db was {r['db_state']}; "
              f"base: {r['source']}); {r['from_metadata']} job(s) and {r['results_from_metadata']} "
              f"result(s) restored from artifact metadata, {r['recipes_from_metadata']} recipe(s) "
              f"from metadata, {backup} from backup", markup=False)


"""`tprm compare`: hand-made stores with known values, axis mismatches, partial overlaps, the TUI screen.

The stores are real TinyDB stores whose job records are written through the Store API with chosen
values (no training), so every number the comparison prints is known in advance.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_tprm

from tprm.analysis.compare import AxisMismatch, align, difference, regime_changes, restrict
from tprm.analysis.phase import build_grid
from tprm.engine.store import make_owner
from tprm.service import BadInput, Service

BASE = """\
name: {name}
dataset: {{name: mnist1d, seed: 3, num_samples: 500}}
model: {{name: conv1d, kwargs: {{widths: [8, 8, 8]}}}}
dense: {{epochs: 16, batch_size: 50, lr: 0.05, checkpoint_every: 1}}
temperature: {{knob: {knob}, values: {temps}}}
densities: {dens}
retrain: {{epochs: 1, batch_size: 50, lr: {rlr}, seeds: [0, 1], last_epochs: 1}}
dense_seeds: [0]
execution: {{device: cpu}}
"""


def recipe_text(name: str, temps=(1, 2, 4), dens=(0.2, 0.8), knob="epochs", rlr=0.05) -> str:
    return BASE.format(name=name, knob=knob, temps=list(temps), dens=list(dens), rlr=rlr)


def value_a(t: float, d: float) -> dict:
    """Known cell values of recipe A: error falls with density, mc barrier at 20% density, 4 epochs."""
    return {"test_error": round(0.5 - 0.3 * d + 0.01 * t, 6), "mc": -0.2 if (t, d) == (4, 0.2) else 0.0,
            "cka": 0.97}


def value_b(t: float, d: float) -> dict:
    """Recipe B: error + 0.05 at 20% density and + 0.01 at 80%; no barrier; low CKA at 1 epoch."""
    a = value_a(t, d)
    return {"test_error": round(a["test_error"] + (0.05 if d == 0.2 else 0.01), 6), "mc": 0.0,
            "cka": 0.9 if t == 1 else 0.97}


def write_results(svc: Service, name: str, values, unmeasured=()) -> None:
    """Record every job of recipe `name` as done, with the cell values `values(T, density)`;
    the pair-metric jobs of the (T, density) cells in `unmeasured` stay queued."""
    recipe = svc.recipes.resolve(name)
    plan = svc.recipes.plan(recipe)
    store = svc.workspace.store
    store.put_recipe(recipe.name, recipe.hash, recipe.source, recipe.recipe.to_yaml())
    store.add_jobs([j.record() for j in plan.jobs.values()], recipe.hash)
    owner = make_owner("handmade")
    claimed = set(store.claim(list(plan.jobs), owner, lease_s=600))
    results: dict[str, dict] = {h: {} for h in plan.jobs}
    for cell in plan.cells:
        v = values(cell.temperature, cell.density)
        results[cell.dense].setdefault("checkpoints", {})[str(cell.epoch)] = {"test_error": 0.1}
        for h in cell.retrains:
            results[h] = {"test_error": v["test_error"], "train_loss": 0.1, "train_error": 0.01,
                          "test_loss": 0.5}
        for h in cell.hessians:
            results[h] = {"hessian_trace": 10.0 * cell.density, "hessian_top": 2.0}
        results[cell.pairs] = {"mc": v["mc"], "mc_pairs": [v["mc"]], "mc_loss": v["mc"], "endpoint_gap": 0.0,
                               "cka": v["cka"], "cka_pairs": [v["cka"]], "cka_logits": v["cka"]}
    prov = {"device": "cpu", "host": "test", "group_size": 1, "group_wall_s": 1.5}
    skip = {c.pairs for c in plan.cells if (c.temperature, c.density) in set(unmeasured)}
    store.finish_many([{"hash": h, "owner": owner, "state": "done", "result": results[h], "provenance": prov}
                       for h in plan.jobs if h in claimed and h not in skip])
    store.release([h for h in skip if h in claimed], owner)


def make_store(root, recipes: dict[str, tuple[str, object]]) -> Service:
    (root / "recipes").mkdir(parents=True)
    for name, (text, _) in recipes.items():
        (root / "recipes" / f"{name}.yaml").write_text(text)
    svc = Service(root)
    for name, (_, values) in recipes.items():
        write_results(svc, name, values)
    return Service(root)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Store 1: A and B (aligned, same store). Store 2: mismatching and overlapping recipes."""
    work = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        one = make_store(work / "one", {"a": (recipe_text("a"), value_a),
                                        "b": (recipe_text("b", rlr=0.1), value_b)})
        two = make_store(work / "two", {
            "lr-knob": (recipe_text("lr-knob", temps=(0.1, 0.2), knob="lr"), value_a),
            "other-dens": (recipe_text("other-dens", dens=(0.1, 0.4)), value_b),
            "other-temps": (recipe_text("other-temps", temps=(8, 16)), value_b),
            "overlap": (recipe_text("overlap", temps=(2, 4, 8), dens=(0.2, 0.5)), value_b)})
        yield work, one, two


def test_known_difference_map(pair) -> None:
    work, one, _ = pair
    c = one.reports.compare("a", "b", "test_error")
    assert not c["partial"]
    diff = c["difference"]
    assert diff.temperatures == [4, 2, 1] and diff.densities == [0.2, 0.8]  # coldest first
    for i, t in enumerate(diff.temperatures):
        for j, d in enumerate(diff.densities):
            assert diff.mean[i][j] == pytest.approx(0.05 if d == 0.2 else 0.01, abs=1e-9)
    # regimes: A has Regime I at (4, 20%); B is II-B there; B is II-A at 1 epoch (CKA 0.9)
    changes = {(x["temperature"], x["density"]): (x["a"], x["b"]) for x in c["regime_changes"]}
    assert changes == {(4, 0.2): ("I", "II-B"), (1, 0.2): ("II-B", "II-A"), (1, 0.8): ("II-B", "II-A")}
    assert "+0.050" in c["text"] and "+0.010" in c["text"]
    assert "3 cell(s) changed regime" in c["text"]


def test_cli_compare_prints_maps_and_json(pair) -> None:
    work, one, _ = pair
    r = run_tprm("compare", "a", "b", "--store", str(one.store_dir), cwd=work)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "compare test_error: A = a, B = b"
    assert "aligned grids: 3 epochs values x 2 densities (6 cells)" in lines[1]
    diff_at = lines.index("difference B - A (test_error)")
    rows = {ln.split("│")[0].strip(): ln.split("│")[1].split() for ln in lines[diff_at + 3:diff_at + 5]}
    assert rows == {"80%": ["+0.010"] * 3, "20%": ["+0.050"] * 3}
    # side by side: the first map row holds both A's and B's 80% rows
    row80 = next(ln for ln in lines if ln.strip().startswith("80%"))
    assert row80.count("│") == 2
    j = json.loads(run_tprm("compare", "a", "b", "--store", str(one.store_dir), "--json", "--metric", "mc",
                            cwd=work).stdout)
    assert j["metric"] == "mc" and j["difference"]["mean"][0] == [pytest.approx(0.2), 0.0]
    assert j["grid_a"]["mean"][0] == [-0.2, 0.0] and j["regimes_b"]["regime"][0] == ["II-B", "II-B"]


@pytest.mark.parametrize("other, axis", [("lr-knob", "temperature knob differs"),
                                         ("other-dens", "densities differ"),
                                         ("other-temps", "temperature values differ")])
def test_mismatched_grids_exit_2_naming_the_axis(pair, other, axis) -> None:
    work, one, two = pair
    r = run_tprm("compare", "a", other, "--store", str(one.store_dir), "--store-b", str(two.store_dir), cwd=work)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and axis in lines[0] and "Traceback" not in r.stderr


def test_partial_overlap_lists_shared_cells(pair) -> None:
    work, one, two = pair
    c = one.reports.compare("a", "overlap", other=two)
    assert c["partial"]
    assert c["shared_cells"] == [[4, 0.2], [2, 0.2]]
    assert c["note"].startswith("partial overlap: comparing the 2 shared cells (epochs 4, 2 x densities 20%)")
    assert "A only: epochs 1 and densities 80%" in c["note"] and "B only: epochs 8 and densities 50%" in c["note"]
    assert c["difference"].mean == [[pytest.approx(0.05)], [pytest.approx(0.05)]]


def test_compare_wraps_the_overlap_note_and_lists_every_other_setting_that_differs(pair) -> None:
    work, one, two = pair
    c = one.reports.compare("a", "overlap", other=two, width=80)
    lines = c["text"].splitlines()
    assert all(len(line) <= 80 for line in lines)
    note = " ".join(line.strip() for line in lines[1:4])
    assert "A only: epochs 1 and densities 80%; B only: epochs 8 and densities 50%" in note  # nothing cut
    assert "same settings apart from the epochs values and densities" in c["text"]
    # a and b differ in the retraining lr (and only there): said before any map
    r = run_tprm("compare", "a", "b", "--store", str(one.store_dir), cwd=work)
    assert r.returncode == 0, r.stderr
    head = r.stdout.split("\n\n")[0]
    assert "other settings differ (1; A vs B): retrain.lr 0.05 vs 0.1" in head
    assert [d["setting"] for d in one.reports.compare("a", "b")["settings_differ"]] == ["retrain.lr"]


def test_differing_settings_name_the_schedule_behind_the_same_knob_value() -> None:
    from tprm.analysis.compare import differing_settings
    from tprm.engine.recipe import parse_recipe

    a = parse_recipe(recipe_text("a")).to_dict()
    b = parse_recipe(recipe_text("b", temps=(1, 2)).replace("epochs: 16,", "epochs: 4,")).to_dict()
    b["execution"]["jobs"] = 8  # where and how fast it runs: not a difference of results
    assert differing_settings(a, b) == [("dense.epochs", 16, 4)]


def test_compare_rejects_regime_metric(pair) -> None:
    _, one, _ = pair
    with pytest.raises(BadInput, match="--metric"):
        one.reports.compare("a", "b", "regime")


def test_align_and_restrict_are_pure() -> None:
    recs = [{"temperature": t, "density": d, "test_error": t * d} for t in (1, 2, 3) for d in (0.1, 0.5)]
    ga = build_grid(recs, "test_error", None, None, "lr", "larger")
    gb = build_grid([r for r in recs if r["temperature"] > 1], "test_error", None, None, "lr", "larger")
    al = align(ga, gb)
    assert al.partial and al.temperatures == [2, 3] and al.only_a == {"temperatures": [1], "densities": []}
    sub = restrict(ga, al.temperatures, al.densities)
    assert sub.mean == [[pytest.approx(0.2), pytest.approx(1.0)], [pytest.approx(0.3), pytest.approx(1.5)]]
    assert difference(sub, restrict(gb, al.temperatures, al.densities)).mean == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(AxisMismatch, match="knob"):
        align(ga, build_grid(recs, "test_error", None, None, "epochs", "fewer"))


def test_regime_changes_empty_for_same_grid(pair) -> None:
    _, one, _ = pair
    r = one.results.grid("a", "regime")
    assert regime_changes(r, r) == []


# -- TUI ------------------------------------------------------------------------------------------
def test_compare_screen_snapshot(snap_compare, pair) -> None:
    from test_tui_snapshots import before

    from tprm.tui.app import TprmApp

    work, one, _ = pair

    def ready(screen) -> bool:
        return bool(getattr(screen, "result", None))

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        app = TprmApp(str(one.store_dir), poll_interval=3600)
        app.recipe = "a"
        assert snap_compare(app, terminal_size=(80, 24), run_before=before("6", ready=ready))


async def test_compare_screen_pick_swap_and_scroll(pair) -> None:
    from test_tui_snapshots import settle

    from tprm.tui.app import TprmApp

    work, one, _ = pair
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        app = TprmApp(str(one.store_dir), poll_interval=3600)
        app.recipe = "a"
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("6")
            await settle(pilot)
            screen = app.screen
            assert screen.pair == ("a", "b") and "difference B - A" in screen.result["text"]
            await pilot.press("s")
            await settle(pilot)
            assert screen.pair == ("b", "a") and "-0.050" in screen.result["text"]
            scroll = screen.query_one("#compare-scroll")
            assert scroll.max_scroll_y > 0  # the regime maps are below the fold at 80x24
            scroll.focus()
            await pilot.press("end")
            await settle(pilot)
            assert scroll.scroll_y == scroll.max_scroll_y
            # the command palette reaches the screen by name too
            await pilot.press("1")
            await settle(pilot)
            await pilot.press("ctrl+p")
            await pilot.press(*"Compare: two")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot)
            assert app.current_mode == "compare" and app.screen.result


def test_tmux_report_key_and_compare_screen(pair) -> None:
    """In a real terminal at 80x24: w on the Plot screen writes the report, 6 shows the comparison."""
    import os
    import shlex
    import shutil
    import sys
    import time

    from conftest import ROOT
    from test_tui_e2e import Terminal

    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is not installed (apt-get install -y tmux); the end-to-end test needs a real terminal")
    work, one, _ = pair
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = (f"env PYTHONPATH={shlex.quote(pythonpath)} TERM=xterm-256color "
               f"{shlex.quote(sys.executable)} -m tprm tui --store {shlex.quote(str(one.store_dir))}")
    term = Terminal(tmux, f"tprm-compare-{os.getpid()}", command, work)
    try:
        term.wait_for(r"1 Recipes.*recipe: \S+", 60)
        term.wait_for(r"plan: \d+/\d+ jobs done", 60)  # the list and the selected recipe are loaded
        term.keys("g")  # g: the first row; the store's own recipes come first: a, then b
        term.wait_for(r"\bb\s+epochs\s+3x2", 60)
        term.wait_for(r"recipe: a\b", 20)
        term.keys("4")
        term.wait_for(r"density\s+│\s+4\s+2\s+1", 60)
        term.keys("w")
        shown = term.wait_for(r"report: \S+", 120)
        assert (work / "reports" / "a" / "report.md").exists(), shown
        term.keys("6")
        screen = term.wait_for(r"\+0\.050 \+0\.050 \+0\.050", 60)
        assert "compare test_error: A = a, B = b" in screen and "difference B - A (test_error)" in screen
        term.keys("q")
        deadline = time.monotonic() + 20
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not term.alive(), term.screen()
    finally:
        term.close()

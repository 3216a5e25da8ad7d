"""Phases of a run being recorded: detection on the committed prefix of a store, and the callbacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer.errors import PinnlogError
from pinnlog.analyzer.io import open_run
from pinnlog.analyzer.phases import detect_phases
from pinnlog.analyzer.phases import live as live_module
from pinnlog.analyzer.phases.live import PhaseWatcher, _LightningHooks, live_phases
from pinnlog.analyzer.phases.table import Phase, PhaseTable

SAMPLE = Path(__file__).resolve().parents[3] / "sample_logs" / "ac_vanilla.zarr"


def _commit_only(store: Path, group: str, rows: int) -> None:
    """Make ``store`` look like a run still being recorded with ``rows`` rows of ``group`` committed."""
    meta = store / group / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["n_committed"] = rows
    meta.write_text(json.dumps(doc))
    root = store / "zarr.json"
    doc = json.loads(root.read_text())
    doc["attributes"]["status"] = "recording"
    root.write_text(json.dumps(doc))


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="sample_logs/ac_vanilla.zarr is not in this checkout")
def test_live_detection_sees_exactly_the_committed_prefix(tmp_path):
    store = tmp_path / "live.zarr"
    shutil.copytree(SAMPLE, store)
    full_snr = M.snr(open_run(SAMPLE)).compute()
    _commit_only(store, "gradient_stats", 160)  # every 2 steps to 300, then the first ten of every 100
    table = live_phases(store)
    prefix = full_snr.isel(step=slice(0, 160))
    test_error = M.relative_l2(open_run(SAMPLE)).compute()
    expected = detect_phases(prefix, test_error=test_error, loss=open_run(SAMPLE)["scalars"].to_dataset()["loss"])
    assert table.phases[-1].last_step == int(prefix["step"].values[-1]) < int(full_snr["step"].values[-1])
    assert table.boundaries == expected.boundaries and table.current == expected.phases[-1].label


def _table(*labels) -> PhaseTable:
    return PhaseTable("snr", [Phase(label, 10 * i + 1, 10 * i + 10, 1.0, 0.0, 5) for i, label in enumerate(labels)])


def test_watcher_checks_every_n_steps_flushes_first_and_fires_once(monkeypatch):
    seen = iter(
        [_table("fitting"), _table("fitting", "diffusion"), _table("fitting", "diffusion", "total diffusion")]
        + [_table("fitting", "diffusion", "total diffusion")] * 5
    )
    calls = []
    monkeypatch.setattr(live_module, "live_phases", lambda path: (calls.append("read"), next(seen))[1])
    fired = []
    watcher = PhaseWatcher("run.zarr", fired.append, every=100, flush=lambda: calls.append("flush"))
    for step in range(0, 501):
        watcher.check(step)
    assert calls == ["flush", "read"] * 6  # steps 0, 100, ..., 500
    assert [t.current for t in fired] == ["total diffusion"] and watcher.fired_at == 200
    assert watcher.current == "total diffusion"


def test_lightning_hook_flushes_the_pinnlog_recorder_and_stops_the_trainer(monkeypatch):
    seen = iter([_table("fitting", "diffusion"), _table("fitting", "diffusion", "total diffusion")])
    flushed = []
    monkeypatch.setattr(live_module, "live_phases", lambda path: next(seen))
    recorder_callback = SimpleNamespace(recorder=SimpleNamespace(flush=lambda: flushed.append(True)))
    trainer = SimpleNamespace(global_step=0, callbacks=[object(), recorder_callback], should_stop=False)
    hooks = _LightningHooks(PhaseWatcher("run.zarr", every=10), stop_training=True)
    hooks.on_train_batch_end(trainer, None, None, None, 0)
    assert flushed == [True] and trainer.should_stop is False
    trainer.global_step = 10
    hooks.on_train_batch_end(trainer, None, None, None, 0)
    assert flushed == [True, True] and trainer.should_stop is True


def test_watcher_rejects_a_bad_interval():
    with pytest.raises(PinnlogError, match="every must be a positive number of steps"):
        PhaseWatcher("run.zarr", every=0)


def test_lightning_callback_without_lightning_is_a_one_line_error():
    try:
        import lightning  # noqa: F401
    except ImportError:
        try:
            import pytorch_lightning  # noqa: F401
        except ImportError:
            with pytest.raises(PinnlogError, match="needs Lightning"):
                live_module.lightning_callback("run.zarr")
            return
    callback = live_module.lightning_callback("run.zarr", every=5)
    assert callback.watcher.every == 5


def test_watch_refresh_names_the_phase_of_its_report():
    from pinnlog.analyzer.watch import Refresh

    phases = [{"label": "fitting", "first_step": 2}, {"label": "diffusion", "first_step": 1_234}]
    report = SimpleNamespace(summary={"runs": [{"phases": phases}]})
    assert Refresh("recording", {"gradient_stats": 10}, report).phase == "diffusion since step 1,234"
    assert Refresh("recording", {}, None).phase is None
    assert Refresh("recording", {}, SimpleNamespace(summary={"runs": [{"phases": []}]})).phase is None

"""FIT workout files decode with Garmin's own FIT SDK (PyPI ``garmin-fit-sdk``).

How it runs:
  * The Swift test ``GatewayProvidersTests.FITExportTests`` encodes every fixture of
    ``Tests/GatewayProvidersTests/Fixtures/valid`` and, when the environment variable
    ``FIT_OUT_DIR`` is set, writes ``<fixture>.fit`` files there.
  * This module runs that Swift test once (session fixture) into a temporary directory,
    then decodes every file with ``garmin_fit_sdk`` and compares the decoded messages
    with expectations computed here, independently, from the fixture's session JSON.

Usage (from the repository root):
    pytest Tests/e2e/test_fit_decode.py

Environment:
  FIT_DIR             use already generated .fit files from this directory (skips swift)
  SWIFT_PACKAGE_PATH  package to run ``swift test`` in (default: the repository root)
  SWIFT_SCRATCH_PATH  ``--scratch-path`` for swift (default: <package>/.build)
Requires: pip install garmin-fit-sdk pytest; a Swift 6 toolchain on PATH.
"""

import json
import os
import pathlib
import subprocess
import tempfile

import pytest

garmin_fit_sdk = pytest.importorskip("garmin_fit_sdk")
from garmin_fit_sdk import Decoder, Stream  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "GatewayProvidersTests" / "Fixtures" / "valid"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))

INTENSITY = {"ACTIVE": "active", "REST": "rest", "WARMUP": "warmup", "COOLDOWN": "cooldown",
             "RECOVERY": "recovery", "INTERVAL": "interval"}
SPORT = {"RUN": ("running", "generic"), "BIKE": ("cycling", "generic"),
         "SWIM": ("swimming", "lap_swimming")}


@pytest.fixture(scope="session")
def fit_dir():
    given = os.environ.get("FIT_DIR")
    if given:
        yield pathlib.Path(given)
        return
    package = pathlib.Path(os.environ.get("SWIFT_PACKAGE_PATH", str(REPO)))
    scratch = os.environ.get("SWIFT_SCRATCH_PATH", str(package / ".build"))
    with tempfile.TemporaryDirectory(prefix="fit-out-") as out:
        env = dict(os.environ, FIT_OUT_DIR=out)
        cmd = ["swift", "test", "--scratch-path", scratch,
               "--filter", "GatewayProvidersTests.FITExportTests"]
        proc = subprocess.run(cmd, cwd=package, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, (
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        yield pathlib.Path(out)


def round_half_away(x):
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def unwrap(items):
    """Repeats of 1 are spliced into their parent (the gateway's normalization)."""
    out = []
    for item in items:
        if "repeat" in item:
            inner = unwrap(item["steps"])
            if item["repeat"] == 1:
                out.extend(inner)
            else:
                out.append({"repeat": item["repeat"], "steps": inner})
        else:
            out.append(item)
    return out


def expected_target(target, prefix=""):
    """The decoded fields expected for a target (raw FIT values, see docs/EXPORTERS.md)."""
    if target is None or target["type"] == "OPEN":
        return {prefix + "target_type": "open"} if not prefix else {}
    t = target["type"]
    if t == "HEART_RATE":
        return {prefix + "target_type": "heart_rate", prefix + "target_value": 0,
                prefix + "custom_target_value_low": round_half_away(target["minBpm"]) + 100,
                prefix + "custom_target_value_high": round_half_away(target["maxBpm"]) + 100}
    if t == "HEART_RATE_ZONE":
        return {prefix + "target_type": "heart_rate", prefix + "target_value": target["zone"]}
    if t == "POWER":
        return {prefix + "target_type": "power", prefix + "target_value": 0,
                prefix + "custom_target_value_low": round_half_away(target["minWatts"]) + 1000,
                prefix + "custom_target_value_high": round_half_away(target["maxWatts"]) + 1000}
    if t == "POWER_ZONE":
        return {prefix + "target_type": "power", prefix + "target_value": target["zone"]}
    if t == "POWER_PERCENT_FTP":
        return {prefix + "target_type": "power", prefix + "target_value": 0,
                prefix + "custom_target_value_low": round_half_away(target["min"]),
                prefix + "custom_target_value_high": round_half_away(target["max"])}
    if t == "PACE":
        if "minSecondsPerKm" in target:
            fast, slow, dist = target["minSecondsPerKm"], target["maxSecondsPerKm"], 1000
        else:
            fast, slow, dist = target["minSecondsPer100m"], target["maxSecondsPer100m"], 100
        return {prefix + "target_type": "speed", prefix + "target_value": 0,
                prefix + "custom_target_value_low": round_half_away(dist / slow * 1000),
                prefix + "custom_target_value_high": round_half_away(dist / fast * 1000)}
    if t == "CADENCE":
        return {prefix + "target_type": "cadence", prefix + "target_value": 0,
                prefix + "custom_target_value_low": round_half_away(target["minRpm"]),
                prefix + "custom_target_value_high": round_half_away(target["maxRpm"])}
    raise AssertionError(f"unknown target {t}")


def expected_steps(items, out):
    """workout_step messages in file order: a repeat follows its steps and points back."""
    for item in items:
        if "repeat" in item:
            first = len(out)
            expected_steps(item["steps"], out)
            out.append({"message_index": len(out), "duration_type": "repeat_until_steps_cmplt",
                        "duration_step": first, "repeat_steps": item["repeat"]})
            continue
        d = item["duration"]
        exp = {"message_index": len(out), "intensity": INTENSITY[item["kind"]]}
        if d["type"] == "TIME":
            exp.update(duration_type="time", duration_value=round_half_away(d["seconds"] * 1000))
        elif d["type"] == "DISTANCE":
            exp.update(duration_type="distance",
                       duration_value=round_half_away(d["meters"] * 100))
        else:
            exp.update(duration_type="open")
        exp.update(expected_target(item.get("target")))
        exp.update(expected_target(item.get("secondaryTarget"), prefix="secondary_"))
        if item.get("name"):
            exp["wkt_step_name"] = item["name"]
        out.append(exp)
    return out


def performed(items):
    """(seconds, meters, count) of the steps as performed, repeats expanded."""
    secs = meters = count = 0
    for item in items:
        if "repeat" in item:
            s, m, c = performed(item["steps"])
            secs, meters, count = secs + s * item["repeat"], meters + m * item["repeat"], \
                count + c * item["repeat"]
        else:
            count += 1
            d = item["duration"]
            secs += d.get("seconds", 0)
            meters += d.get("meters", 0)
    return secs, meters, count


def decoded_totals(steps):
    """Executes the decoded repeat steps: (seconds, meters, performed step count)."""
    secs = meters = count = 0
    remaining = {}
    i = 0
    while i < len(steps):
        s = steps[i]
        if s["duration_type"] == "repeat_until_steps_cmplt":
            left = remaining.get(i, s["repeat_steps"])
            if left > 1:
                remaining[i] = left - 1
                i = s["duration_step"]
                continue
            remaining.pop(i, None)
        else:
            count += 1
            secs += s.get("duration_time", 0)
            meters += s.get("duration_distance", 0)
        i += 1
    return secs, meters, count


def decode(path):
    decoder = Decoder(Stream.from_file(str(path)))
    assert decoder.is_fit(), path
    assert decoder.check_integrity(), f"{path}: CRC check failed"
    decoder = Decoder(Stream.from_file(str(path)))
    messages, errors = decoder.read(convert_types_to_strings=True,
                                    expand_sub_fields=True, expand_components=True,
                                    merge_heart_rates=False)
    assert errors == [], f"{path}: {errors}"
    return messages


def test_fixtures_present():
    assert len(FIXTURE_NAMES) >= 15


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fit_file_decodes(fit_dir, name):
    session = json.loads((FIXTURES / f"{name}.json").read_text())["session"]
    path = fit_dir / f"{name}.fit"
    assert path.exists(), f"{path} was not generated"
    messages = decode(path)

    file_id = messages["file_id_mesgs"]
    assert len(file_id) == 1 and file_id[0]["type"] == "workout"

    workout = session["workout"]
    tree = unwrap(workout["steps"])
    expected = expected_steps(tree, [])
    (wkt,) = messages["workout_mesgs"]
    sport, sub_sport = SPORT[workout["sport"]]
    assert wkt["sport"] == sport and wkt["sub_sport"] == sub_sport
    assert wkt["num_valid_steps"] == len(expected)
    assert wkt["wkt_name"] == session["title"]

    steps = messages["workout_step_mesgs"]
    assert len(steps) == len(expected)
    for got, exp in zip(steps, expected):
        for key, value in exp.items():
            assert got.get(key) == value, (
                f"{name} step {exp['message_index']}: {key} = {got.get(key)!r}, "
                f"expected {value!r}; decoded {got}")
        if exp["duration_type"] != "repeat_until_steps_cmplt" and "secondary_target_type" \
                not in exp:
            assert "secondary_target_type" not in got

    secs, meters, count = performed(workout["steps"])
    got_secs, got_meters, got_count = decoded_totals(steps)
    assert got_count == count
    assert got_secs == pytest.approx(secs, abs=1e-3)
    assert got_meters == pytest.approx(meters, abs=1e-2)

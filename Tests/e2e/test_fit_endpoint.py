"""GET /v1/sessions/{id}/workout.fit over HTTP, decoded by Garmin's own FIT SDK (SPEC section 4, 6)."""

from __future__ import annotations

from garmin_fit_sdk import Decoder, Stream

from conftest import assert_error, created, deleted, describe, uid


def _decode(data: bytes) -> dict:
    decoder = Decoder(Stream.from_byte_array(bytearray(data)))
    assert decoder.is_fit(), "not a FIT file"
    assert decoder.check_integrity(), "FIT CRC check failed"
    # check_integrity consumes the stream: read with a fresh decoder.
    decoder = Decoder(Stream.from_byte_array(bytearray(data)))
    messages, errors = decoder.read(convert_types_to_strings=True, expand_sub_fields=True)
    assert errors == [], errors
    return messages


def test_fit_file_of_a_stored_session(gw):
    sid, aid = uid("fit"), uid("ath")
    gw.accept(created(sid, aid))
    r = gw.get(f"/v1/sessions/{sid}/workout.fit")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "application/vnd.ant.fit"
    assert f'filename="{sid}.fit"' in r.headers["Content-Disposition"]
    messages = _decode(r.content)
    assert messages["file_id_mesgs"][0]["type"] == "workout"
    workout = messages["workout_mesgs"][0]
    steps = messages["workout_step_mesgs"]
    # The default workout: warm-up, 5 x (interval, recovery) as a repeat step, open cool-down.
    assert workout["num_valid_steps"] == len(steps) == 5
    assert steps[0]["duration_type"] == "time" and steps[0]["duration_time"] == 600
    assert steps[1]["intensity"] == "interval" and steps[1]["duration_time"] == 300
    assert steps[1]["custom_target_power_low"] == 1250 and steps[1]["custom_target_power_high"] == 1270
    assert steps[3]["duration_type"] == "repeat_until_steps_cmplt"
    assert steps[3]["duration_step"] == 1 and steps[3]["repeat_steps"] == 5
    assert steps[4]["duration_type"] == "open" and steps[4]["intensity"] == "cooldown"


def test_fit_follows_the_latest_revision(gw):
    sid, aid = uid("fit"), uid("ath")
    gw.accept(created(sid, aid, revision=1))
    workout = {"sport": "RUN", "steps": [{"kind": "ACTIVE", "duration": {"type": "DISTANCE", "meters": 5000}}]}
    gw.accept(created(sid, aid, revision=2, workout=workout))
    steps = _decode(gw.get(f"/v1/sessions/{sid}/workout.fit").content)["workout_step_mesgs"]
    assert len(steps) == 1 and steps[0]["duration_type"] == "distance" and steps[0]["duration_distance"] == 5000


def test_fit_errors(gw):
    assert_error(gw.get("/v1/sessions/nope-never-seen/workout.fit"), 404, "not_found")
    sid, aid = uid("fit"), uid("ath")
    gw.accept(created(sid, aid, workout={"sport": "BIKE", "steps": []}))
    r = gw.get(f"/v1/sessions/{sid}/workout.fit")
    assert_error(r, 422, "validation_failed")
    assert r.json()["error"]["message"].startswith("Validation failed: workout.steps"), describe(r)
    assert_error(gw.get(f"/v1/sessions/{sid}/workout.fit", auth=False), 401, "unauthorized")
    gw.accept(deleted(sid, aid, revision=2))
    assert_error(gw.get(f"/v1/sessions/{sid}/workout.fit"), 404, "not_found")

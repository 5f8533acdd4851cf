"""Participants and the registry: enrol, rotate, revoke, get, list, registry as of a size."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.settings import Settings
from ledger import Signer
from ledger.registry import (
    build_revocation,
    build_rotation,
    build_rotation_request,
)
from tests.api.support import (
    Api,
    assert_problem,
    enrol,
    enrolment,
    envelope,
    harvest,
    profile,
    snapshot,
)
from tests.ledger.builders import ORIGIN, TIME


def _rotation(world, pid: str, old: Signer, new: Signer):
    request = build_rotation_request(origin=ORIGIN, participant_id=pid, old=old, new=new, time=TIME)
    return build_rotation(origin=ORIGIN, operator=world.operator, request=request, time=TIME)


def _revocation(world, pid: str, key: Signer, reason: str = "device lost"):
    return build_revocation(
        origin=ORIGIN,
        operator=world.operator,
        participant_id=pid,
        key_id=key.key_id,
        reason=reason,
        time=TIME,
    )


def test_enrol_then_get(api, world):
    farm = Signer.generate()
    r = api.post("/v1/participants", json=envelope(enrolment(world, "farm-1", farm)))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True
    assert body["entry"]["index"] == 1
    participant = body["participant"]
    assert participant["participant_id"] == "farm-1"
    assert participant["profile"] == profile("farm-1")
    assert participant["enrolled_at"] == 1
    assert participant["operator"] is False
    assert participant["keys"] == [
        {
            "key_id": farm.key_id.hex(),
            "public_key": farm.public.to_base64(),
            "added_at": 1,
            "revoked_at": None,
        }
    ]
    assert api.get("/v1/participants/farm-1").json() == participant
    # The new key signs from the next index on.
    assert (
        api.post("/v1/events", json=envelope(harvest(world, "farm-1", signer=farm))).status_code
        == 201
    )


def test_enrol_is_idempotent(api, world):
    env = envelope(enrolment(world, "farm-1", Signer.generate()))
    assert api.post("/v1/participants", json=env).status_code == 201
    again = api.post("/v1/participants", json=env)
    assert again.status_code == 200
    assert again.json()["created"] is False


def test_enrol_refusals_leave_state_unchanged(api, world):
    farm = enrol(world, "farm-1")
    cases = [
        # not an enrol statement
        (envelope(harvest(world, "farm-1")), 400, "kind_mismatch", "kind"),
        # signed by a participant, not the operator
        (
            envelope(enrolment(world, "farm-2", Signer.generate(), operator=farm)),
            403,
            "not_operator",
            "signer",
        ),
        # the key is registered already
        (envelope(enrolment(world, "farm-3", farm)), 409, "key_exists", "body.request.key"),
    ]
    for env, status, code, field in cases:
        before = snapshot(world.ledger)
        assert_problem(api.post("/v1/participants", json=env), status, code, field)
        assert snapshot(world.ledger) == before


def test_rotate(api, world):
    old = enrol(world, "farm-1")
    new = Signer.generate()
    r = api.post(
        "/v1/participants/farm-1/rotate", json=envelope(_rotation(world, "farm-1", old, new))
    )
    assert r.status_code == 201, r.text
    index = r.json()["entry"]["index"]
    keys = {k["key_id"]: k for k in r.json()["participant"]["keys"]}
    assert keys[old.key_id.hex()]["revoked_at"] == index
    assert keys[new.key_id.hex()] == {
        "key_id": new.key_id.hex(),
        "public_key": new.public.to_base64(),
        "added_at": index,
        "revoked_at": None,
    }
    assert_problem(
        api.post("/v1/events", json=envelope(harvest(world, "farm-1", signer=old))),
        403,
        "key_revoked",
    )
    assert (
        api.post("/v1/events", json=envelope(harvest(world, "farm-1", signer=new))).status_code
        == 201
    )


def test_rotate_for_another_participant_in_the_path(api, world):
    old = enrol(world, "farm-1")
    enrol(world, "farm-2")
    env = envelope(_rotation(world, "farm-1", old, Signer.generate()))
    before = snapshot(world.ledger)
    assert_problem(
        api.post("/v1/participants/farm-2/rotate", json=env),
        400,
        "participant_mismatch",
        "body.request.participant",
    )
    assert snapshot(world.ledger) == before


def test_revoke(api, world):
    farm = enrol(world, "farm-1")
    r = api.post(
        "/v1/participants/farm-1/revoke", json=envelope(_revocation(world, "farm-1", farm))
    )
    assert r.status_code == 201, r.text
    [key] = r.json()["participant"]["keys"]
    assert key["revoked_at"] == r.json()["entry"]["index"]
    # Revoking again: the key is revoked already.
    again = _revocation(world, "farm-1", farm, reason="again")
    assert_problem(
        api.post("/v1/participants/farm-1/revoke", json=envelope(again)),
        403,
        "key_revoked",
        "body.key_id",
    )


def test_revoke_and_rotate_routes_check_kind_and_participant(api, world):
    farm = enrol(world, "farm-1")
    enrol(world, "farm-2")
    revocation = envelope(_revocation(world, "farm-1", farm))
    rotation = envelope(_rotation(world, "farm-1", farm, Signer.generate()))
    before = snapshot(world.ledger)
    assert_problem(
        api.post("/v1/participants/farm-1/rotate", json=revocation), 400, "kind_mismatch", "kind"
    )
    assert_problem(
        api.post("/v1/participants/farm-1/revoke", json=rotation), 400, "kind_mismatch", "kind"
    )
    assert_problem(
        api.post("/v1/participants/farm-2/revoke", json=revocation),
        400,
        "participant_mismatch",
        "body.participant",
    )
    assert_problem(
        api.post("/v1/participants/farm-1/revoke", json=envelope(harvest(world, "farm-1"))),
        400,
        "kind_mismatch",
    )
    assert snapshot(world.ledger) == before


def test_revoke_of_a_key_of_another_participant(api, world):
    enrol(world, "farm-1")
    other = enrol(world, "farm-2")
    env = envelope(_revocation(world, "farm-1", other))
    assert_problem(
        api.post("/v1/participants/farm-1/revoke", json=env), 422, "unknown_key", "body.key_id"
    )


def test_get_unknown_participant(api):
    assert_problem(api.get("/v1/participants/nobody"), 404, "not_found", "participant_id")


@pytest.mark.parametrize("bad", ["Farm", "-farm", "a" * 65, "f%20x"])
def test_malformed_participant_id(api, bad):
    assert_problem(api.get(f"/v1/participants/{bad}"), 422, "validation_failed", "participant_id")


def test_list_is_paged(api, world):
    for n in range(5):
        enrol(world, f"farm-{n}")
    page = api.get("/v1/participants", params={"offset": 1, "limit": 2}).json()
    assert page["total"] == 6
    assert (page["offset"], page["limit"]) == (1, 2)
    assert [p["participant_id"] for p in page["items"]] == ["farm-0", "farm-1"]
    everyone = api.get("/v1/participants").json()
    assert everyone["items"][0]["participant_id"] == "operator"
    assert everyone["items"][0]["operator"] is True
    assert api.get("/v1/participants", params={"offset": 99}).json()["items"] == []


def test_list_page_too_large(world):
    api = Api(create_app(Settings(max_page_size=3, run_checkpointer=False), world.ledger))
    try:
        assert_problem(
            api.get("/v1/participants", params={"limit": 4}), 400, "page_too_large", "limit"
        )
        assert api.get("/v1/participants", params={"limit": 3}).status_code == 200
    finally:
        api.close()


@pytest.mark.parametrize("params", [{"limit": 0}, {"offset": -1}, {"limit": "x"}])
def test_list_bad_parameters(api, params):
    assert_problem(api.get("/v1/participants", params=params), 422, "validation_failed")


def test_registry_as_of_any_size(api, world):
    old = enrol(world, "farm-1")  # index 1
    new = Signer.generate()
    world.ledger.append(_rotation(world, "farm-1", old, new))  # index 2
    world.ledger.append(_revocation(world, "farm-1", new))  # index 3

    def registry(size):
        r = api.get("/v1/registry", params={"size": size})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tree_size"] == size
        return {
            p["participant_id"]: {k["key_id"]: k["revoked_at"] for k in p["keys"]}
            for p in body["participants"]
        }

    assert registry(0) == {}
    assert list(registry(1)) == ["operator"]
    assert registry(2)["farm-1"] == {old.key_id.hex(): None}
    assert registry(3)["farm-1"] == {old.key_id.hex(): 2, new.key_id.hex(): None}
    assert registry(4)["farm-1"] == {old.key_id.hex(): 2, new.key_id.hex(): 3}
    current = api.get("/v1/registry").json()
    assert current["tree_size"] == 4


def test_registry_beyond_the_log(api, world):
    size = world.ledger.size()
    assert_problem(api.get("/v1/registry", params={"size": size + 1}), 400, "out_of_range", "size")
    assert_problem(api.get("/v1/registry", params={"size": -1}), 422, "validation_failed", "size")

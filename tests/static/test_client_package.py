"""The browser client as an npm-style package (app/static/package.json): its
TypeScript declarations compile with `tsc --strict` against a typed usage
example, and cannot drift from the code: every export declared is exported by
the real module (imported in node through package.json `exports`) and vice
versa, as are the client's public members, options and stats; the session
types match the service's own models, and the options and events match
docs/client.md. The service still serves the module itself, unchanged."""

from __future__ import annotations

import enum
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from app.domain import dtos
from tests.support.node_tools import node, node_modules, run_node
from tests.support.processes import ROOT

STATIC = ROOT / "app" / "static"
MANIFEST = json.loads((STATIC / "package.json").read_text())
NAME = MANIFEST["name"]

USAGE = """\
import { SessionsClient, PatchError, applyPatch, tokenExpiry, backoffDelay } from "@callstate/sessions-client";
import type { SavedState, SessionInfo, SessionCallState, StatusEvent, Operation } from "@callstate/sessions-client";
import { applyOperation } from "@callstate/sessions-client/json-patch.js";

declare function myToken(): Promise<string>;
declare function addRow(id: string, session: SessionInfo): void;
declare function showConnection(state: string, transport: string | null, how: string | undefined): void;

const KEY = "calls";
const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as SavedState | null;
const client = new SessionsClient({ url: "https://calls.example.com/", token: await myToken(), getToken: myToken,
                                    transports: ["websocket", "poll"], initialState: saved });
addEventListener("pagehide", () => sessionStorage.setItem(KEY, JSON.stringify(client.saveState())));

const stop: () => void = client.on("added", ({ id, session }) => addRow(id, session));
client.on("changed", ({ id, session, previous, fields }) => {
  const state: SessionCallState | undefined = session.callState;
  if (fields.includes("callState") && previous.callState !== state) addRow(id, session);
});
client.on("removed", ({ session }) => {
  const done: boolean = session.ended === true && session.callState === "Disconnected";
  const members = session.members?.map((m) => m.role) ?? [];
  return [done, members];
});
client.on("reset", ({ sessions, position }) => [sessions.size, position?.length]);
client.on("status", (s: StatusEvent) => showConnection(s.state, s.transport, s.how));
await client.connect();
stop();
const at: string | null = client.positionText;
const cursor: number | undefined = client.position?.cursor;
const live: boolean = client.state === "live" && client.stats.resumes >= 0;
for (const [id, session] of client.sessions) addRow(id, session);
client.reconnect();
client.close();

const ops: Operation[] = [{ op: "add", path: "/a", value: 1 }, { op: "move", from: "/a", path: "/b" }];
try { applyOperation(applyPatch({}, ops), { op: "remove", path: "/b" }); } catch (err) { if (!(err instanceof PatchError)) throw err; }
const exp: number | null = tokenExpiry(at);
const delay: number = backoffDelay(3, 500, 15000);

// What the declarations must refuse:
// @ts-expect-error: there is no such event
client.on("add", () => {});
// @ts-expect-error: a changed event's detail has no `sessions`
client.on("changed", ({ sessions }) => sessions);
// @ts-expect-error: not a transport
new SessionsClient({ transports: ["carrier-pigeon"] });
// @ts-expect-error: not a call state
const wrong: SessionCallState = "Ringin";
// @ts-expect-error: the map is read-only
client.sessions.set("S1", {});
// @ts-expect-error: an option that does not exist
new SessionsClient({ since: "E:1" });

export { at, cursor, live, exp, delay, wrong };
"""

TSCONFIG = {
    "compilerOptions": {"strict": True, "noEmit": True, "target": "ES2022", "module": "NodeNext",
                        "moduleResolution": "NodeNext", "lib": ["ES2022", "DOM", "DOM.Iterable"], "types": [],
                        "skipLibCheck": False},
    "files": ["usage.ts"],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A consumer's project with the package installed (a link to app/static, as `npm link` makes)."""
    scope, name = NAME.split("/")
    (tmp_path / "node_modules" / scope).mkdir(parents=True)
    (tmp_path / "node_modules" / scope / name).symlink_to(STATIC, target_is_directory=True)
    (tmp_path / "package.json").write_text(json.dumps({"name": "consumer", "private": True, "type": "module"}))
    (tmp_path / "load.mjs").write_text("export const load = (specifier) => import(specifier);\n")
    return tmp_path


def tsc(project: Path, usage: str) -> subprocess.CompletedProcess[str]:
    (project / "usage.ts").write_text(usage)
    (project / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    return subprocess.run([node(), str(node_modules() / "typescript" / "bin" / "tsc"), "-p", str(project)],
                          capture_output=True, text=True, timeout=300)


def test_the_manifest() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert MANIFEST["version"] == version  # released with the service
    assert MANIFEST["type"] == "module" and MANIFEST["types"] == "./sessions-client.d.ts"
    assert MANIFEST["exports"]["."] == {"types": "./sessions-client.d.ts", "default": "./sessions-client.js"}
    for file in MANIFEST["files"]:
        assert (STATIC / file).is_file(), file
    imported = set(re.findall(r"from '\./([\w.-]+)'", (STATIC / "sessions-client.js").read_text()))
    assert imported <= set(MANIFEST["files"])  # the package holds everything the module imports
    for target in MANIFEST["exports"].values():
        for path in target.values() if isinstance(target, dict) else [target]:
            assert path.removeprefix("./") in MANIFEST["files"] + ["package.json"], path


def test_typed_usage_compiles_with_tsc_strict(project: Path) -> None:
    done = tsc(project, USAGE)
    assert done.returncode == 0, f"tsc --strict failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_a_misuse_fails_the_compile(project: Path) -> None:
    """The check can fail: a misspelt session field is an error, not `any`."""
    done = tsc(project, USAGE + '\nexport const x: string | undefined = ({} as SessionInfo).calState;\n')
    assert done.returncode != 0 and "calState" in done.stdout, done.stdout


def ts_type(info: msgspec.inspect.Type, structs: dict[str, Any]) -> str:
    """What a field of the models is declared as in sessions-client.d.ts."""
    if isinstance(info, msgspec.inspect.UnionType):
        [inner] = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return ts_type(inner, structs)
    if isinstance(info, msgspec.inspect.StrType):
        return "string"
    if isinstance(info, msgspec.inspect.BoolType):
        return "boolean"
    if isinstance(info, msgspec.inspect.EnumType):
        return info.cls.__name__
    if isinstance(info, msgspec.inspect.ListType):
        return f"readonly {ts_type(info.item_type, structs)}[]"
    if isinstance(info, msgspec.inspect.DictType):
        return f"Readonly<Record<{ts_type(info.key_type, structs)}, {ts_type(info.value_type, structs)}>>"
    if isinstance(info, msgspec.inspect.StructType):
        structs[info.cls.__name__] = info
        return info.cls.__name__
    raise AssertionError(f"no TypeScript for {info}")


def model_shapes() -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The wire types of one session, from app/domain/dtos.py, as the .d.ts must declare them."""
    structs: dict[str, Any] = {}
    ts_type(msgspec.inspect.type_info(dtos.SessionInfo), structs)
    interfaces: dict[str, Any] = {}
    while len(interfaces) < len(structs):
        for name, info in list(structs.items()):
            interfaces[name] = {f.encode_name: {"optional": not f.required, "readonly": True,
                                                "type": ts_type(f.type, structs)} for f in info.fields}
    enums: dict[str, list[str]] = {}
    for cls in vars(dtos).values():
        if isinstance(cls, type) and issubclass(cls, enum.Enum) and cls.__module__ == dtos.__name__:
            enums[cls.__name__] = [member.value for member in cls]
    return interfaces, enums


def doc_names(section: str) -> set[str]:
    """The backticked names in the first column of a table of docs/client.md."""
    text = (ROOT / "docs" / "client.md").read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return {name for line in text.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([^`]+)`", line.split("|")[1])}


def test_declarations_match_the_module_the_models_and_the_docs(project: Path) -> None:
    got = json.loads(run_node(ROOT / "tests" / "support" / "client_package.cjs", str(project), NAME, cwd=project))
    assert got["diagnostics"] == []
    assert set(got["exports"]) == {k for k, v in MANIFEST["exports"].items() if isinstance(v, dict)}
    for subpath, entry in got["exports"].items():  # every export, both ways, of the same kind
        assert entry["declared"] == entry["actual"], subpath
    assert got["exports"]["."]["declared"]["SessionsClient"] == "class"
    assert got["client"]["declared"] == got["client"]["actual"]  # public members, both ways
    options = set(got["interfaces"]["SessionsClientOptions"])
    assert options == set(got["client"]["options"]) == doc_names("Options")
    assert set(got["interfaces"]["ClientStats"]) == set(got["client"]["stats"])
    assert set(got["interfaces"]["SessionsClientEvents"]) == doc_names("Events")
    interfaces, enums = model_shapes()
    for name, fields in interfaces.items():
        assert got["interfaces"][name] == fields, name
    for name, values in enums.items():  # (a union's order is the compiler's, not the source's)
        assert sorted(got["aliases"][name]) == sorted(values), name


async def test_the_service_serves_the_module_unchanged_and_the_declarations_as_text(
        client: httpx.AsyncClient) -> None:
    r = await client.get("/static/sessions-client.js")
    assert r.status_code == 200 and r.content == (STATIC / "sessions-client.js").read_bytes()
    assert r.headers["content-type"].startswith("text/javascript")
    for name in ("sessions-client.d.ts", "json-patch.d.ts"):
        r = await client.get(f"/static/{name}")
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["x-content-type-options"] == "nosniff"
    r = await client.get("/static/package.json")
    assert r.status_code == 200 and r.json() == MANIFEST and r.headers["content-type"] == "application/json"

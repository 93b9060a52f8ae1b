"""`/types/typescript` from a real server process: compiles with `tsc --strict`, and
node with the npm `@servicestack/client` reads the service through it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import msgspec

from app.apidocs import metadata, typescript
from app.config import Settings
from app.domain.dtos import GetActiveSessionsResponse
from tests.support.dtos import populate
from tests.support.factories import token
from tests.support.node_tools import node, node_modules, run_node
from tests.support.processes import ServiceProcess

USAGE = """\
import { JsonServiceClient } from "@servicestack/client";
import { GetActiveSessions, GetActiveSessionsResponse, SessionCallState, SessionInfo, SessionMemberRoles } from "./dtos";

declare const process: { argv: string[]; exit(code: number): never };  // (no @types/node needed)

async function main(): Promise<void> {
    const [baseUrl, token] = process.argv.slice(2);
    const client = new JsonServiceClient(baseUrl);
    client.bearerToken = token;
    const declared = await client.get<GetActiveSessionsResponse>("/sessions/active");
    // No IReturn marker on the published DTO: the pre-defined route answers with the same JSON.
    const viaApi = (await client.post(new GetActiveSessions())) as unknown as GetActiveSessionsResponse;
    const first: SessionInfo = declared.sessions![0];
    const checks = {
        connected: first.callState === SessionCallState.Connected,
        agent: first.members?.[0].role === SessionMemberRoles.Agent,
        typeName: new GetActiveSessions().getTypeName(),
    };
    console.log(JSON.stringify({ declared, viaApi, checks }));
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
"""

TSCONFIG = {
    "compilerOptions": {"strict": True, "target": "ES2020", "module": "commonjs", "moduleResolution": "node",
                        "lib": ["ES2020", "DOM"], "types": [], "outDir": "out", "skipLibCheck": False},
    "files": ["dtos.ts", "usage.ts"],
}


def compile_project(tmp_path: Path, dtos: str) -> None:
    modules = node_modules()
    (tmp_path / "node_modules").symlink_to(modules)
    (tmp_path / "dtos.ts").write_text(dtos)
    (tmp_path / "usage.ts").write_text(USAGE)
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    done = subprocess.run([node(), str(modules / "typescript" / "bin" / "tsc"), "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"tsc --strict failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_types_typescript_compiles_strict_and_reads_the_service(
        service: ServiceProcess, settings: Settings, tmp_path: Path) -> None:
    r = httpx.get(service.url + "/types/typescript")
    assert r.status_code == 200
    assert r.text.startswith("/* Options:\nDate: ") and "\n//MakePropertiesOptional: True\n" in r.text
    compile_project(tmp_path, r.text)

    populate(service.url)
    bearer = token(settings, endpoint="E1")
    out = json.loads(run_node(tmp_path / "out" / "usage.js", service.url, bearer, cwd=tmp_path))
    wire = msgspec.json.decode(httpx.get(service.url + "/sessions/active",
                                         headers={"Authorization": f"Bearer {bearer}"}).content,
                               type=GetActiveSessionsResponse)
    assert out["declared"] == out["viaApi"] == msgspec.to_builtins(wire)
    assert out["checks"] == {"connected": True, "agent": True, "typeName": "GetActiveSessions"}


def test_a_type_error_against_the_dtos_fails_the_compile(tmp_path: Path) -> None:
    """The compile step can fail: a wrong enum member is caught by the generated types."""
    dtos = typescript.render(metadata.build("http://x"), "now")
    broken = dtos + "\nexport const wrong: SessionCallState = SessionCallState.Ringin;\n"
    try:
        compile_project(tmp_path, broken)
    except AssertionError as exc:
        assert "Ringin" in str(exc)
    else:
        raise AssertionError("tsc accepted a non-existent enum member")

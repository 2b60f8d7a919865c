// Finds the party-sockets server the tests run against: the binary that
// PARTY_SOCKETS_BIN names (go test ./clients/js passes the one it built),
// or else one built here from this repository with `go build` into a
// temporary directory, removed again by cleanup(). So `npm test` needs
// nothing but Node and Go.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// The repository's root: clients/js/test/ is three levels down.
const root = fileURLToPath(new URL("../../../", import.meta.url));

// How long a build may take: a first build fetches and compiles every
// dependency; later ones reuse Go's build cache and take seconds.
const buildTimeoutMs = 10 * 60 * 1000;

const needs =
  "the tests run a real party-sockets server. Either install Go (https://go.dev/dl/, the version in go.mod or later) " +
  "so that npm test builds it, or build it yourself (go build -o party-sockets . at the repository's root) " +
  "and set PARTY_SOCKETS_BIN to its path.";

// serverBinary returns { bin, cleanup }, or throws saying what is missing.
export function serverBinary() {
  const named = process.env.PARTY_SOCKETS_BIN;
  if (named) {
    try {
      if (!statSync(named).isFile()) throw new Error("not a file");
      accessSync(named, constants.X_OK);
    } catch (err) {
      throw new Error(`PARTY_SOCKETS_BIN=${named} is not an executable file (${err.message}); ${needs}`);
    }
    return { bin: named, cleanup: () => {} };
  }
  if (!existsSync(join(root, "go.mod"))) {
    throw new Error(`PARTY_SOCKETS_BIN is not set and ${root} is not the party-sockets repository; ${needs}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "party-sockets-js-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const bin = join(dir, process.platform === "win32" ? "party-sockets.exe" : "party-sockets");
  process.stderr.write(`building the server: go build -o ${bin} . (in ${root}; PARTY_SOCKETS_BIN skips this)\n`);
  // stdout stays quiet: under node --test it carries the test report.
  const go = spawnSync("go", ["build", "-o", bin, "."], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: buildTimeoutMs,
    encoding: "utf8",
  });
  if (go.error || go.status !== 0) {
    cleanup();
    if (go.error?.code === "ENOENT") {
      throw new Error(`PARTY_SOCKETS_BIN is not set and Go is not installed (no "go" on PATH); ${needs}`);
    }
    const why = go.error ? go.error.message : `exit status ${go.status}`;
    throw new Error(`go build of the server failed (${why}):\n${go.stderr}\n${needs}`);
  }
  return { bin, cleanup };
}

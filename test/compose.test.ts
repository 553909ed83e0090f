// Static checks of docker-compose.temporal.yml (no Docker engine needed, none is run): the file is parsed
// by a real YAML parser (Debian's PyYAML, installed by scripts/setup.sh as python3-yaml) and checked for
// what docs/temporal-compose.md promises: the services, exact image pins, loopback-only ports, the
// startup order, VCCR's search attributes, and no privileged or host-namespace containers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes';

const REPO = path.resolve(__dirname, '..', '..'); // dist/test -> repo root
const COMPOSE_FILE = path.join(REPO, 'docker-compose.temporal.yml');
const DOC_FILE = path.join(REPO, 'docs', 'temporal-compose.md');
const PYTHON = '/usr/bin/python3';
const YAML_TO_JSON = 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)';

/** The service names docs/temporal-compose.md documents. */
const SERVICES = {
  postgres: 'postgresql',
  schema: 'temporal-admin-tools',
  server: 'temporal',
  setup: 'temporal-create-namespace',
  ui: 'temporal-ui',
} as const;

// ------------------------------------------------------------------------------------------------
// Loading and narrowing the parsed YAML (it is `unknown` until checked).

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function record(v: unknown, what: string): Json {
  assert.ok(isRecord(v), `${what} must be a mapping, got ${JSON.stringify(v)}`);
  return v;
}

function list(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} must be a list, got ${JSON.stringify(v)}`);
  return v;
}

function text(v: unknown, what: string): string {
  assert.equal(typeof v, 'string', `${what} must be a string, got ${JSON.stringify(v)}`);
  return v as string;
}

/** Parses a YAML file with PyYAML's safe_load; fails (never skips) when PyYAML is not available. */
function loadYaml(file: string): unknown {
  const r = spawnSync(PYTHON, ['-c', YAML_TO_JSON, file], { encoding: 'utf8', timeout: 30_000 });
  const setupHint = 'run `bash scripts/setup.sh` (it installs the Debian package python3-yaml)';
  if (r.error) assert.fail(`cannot run ${PYTHON} to parse ${file} (${r.error.message}): ${setupHint}`);
  if (r.status !== 0) {
    if (/No module named '?yaml'?/.test(r.stderr)) assert.fail(`${PYTHON} cannot import yaml (PyYAML): ${setupHint}`);
    assert.fail(`${PYTHON} could not parse ${file} as YAML (exit ${r.status}):\n${r.stderr}`);
  }
  return JSON.parse(r.stdout) as unknown;
}

let cached: Json | undefined;
function compose(): Json {
  cached ??= record(loadYaml(COMPOSE_FILE), path.basename(COMPOSE_FILE));
  return cached;
}

function services(): Json {
  return record(compose().services, 'services');
}

function service(name: string): Json {
  const s = services()[name];
  assert.ok(s !== undefined, `service ${name} is missing from ${path.basename(COMPOSE_FILE)}`);
  return record(s, `service ${name}`);
}

/** A service's environment as a map, from either the mapping or the KEY=VALUE list form. */
function environment(name: string): Map<string, string> {
  const env = service(name).environment;
  const out = new Map<string, string>();
  if (env === undefined) return out;
  if (Array.isArray(env)) {
    for (const item of env) {
      const entry = text(item, `${name}.environment entry`);
      const eq = entry.indexOf('=');
      out.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
    }
    return out;
  }
  for (const [k, v] of Object.entries(record(env, `${name}.environment`))) out.set(k, v === null ? '' : String(v));
  return out;
}

function envVar(name: string, key: string): string {
  const value = environment(name).get(key);
  assert.ok(value !== undefined, `service ${name} must set ${key}`);
  return value;
}

interface PortBinding {
  hostIp: string | undefined;
  published: string | undefined;
  target: string;
  raw: string;
}

/** The `ports` of a service, short ("[ip:]host:container[/proto]") or long syntax. */
function ports(name: string): PortBinding[] {
  const p = service(name).ports;
  if (p === undefined) return [];
  return list(p, `${name}.ports`).map((entry): PortBinding => {
    if (isRecord(entry)) {
      return {
        hostIp: entry.host_ip === undefined ? undefined : String(entry.host_ip),
        published: entry.published === undefined ? undefined : String(entry.published),
        target: String(entry.target),
        raw: JSON.stringify(entry),
      };
    }
    // Numbers would be YAML 1.1 traps (7233:7233 is a base-60 integer there); ports must be quoted.
    const raw = text(entry, `${name}.ports entry`);
    const m = /^(?:(\[[0-9a-fA-F:]+\]|[0-9.]+):)?(?:(\d+(?:-\d+)?):)?(\d+(?:-\d+)?)(?:\/(?:tcp|udp))?$/.exec(raw);
    assert.ok(m, `${name}: cannot parse port ${raw}`);
    return { hostIp: m[1], published: m[2], target: m[3] ?? '', raw };
  });
}

interface Mount {
  type: 'bind' | 'volume';
  source: string;
  target: string;
  readOnly: boolean;
}

function mounts(name: string): Mount[] {
  const v = service(name).volumes;
  if (v === undefined) return [];
  return list(v, `${name}.volumes`).map((entry): Mount => {
    if (isRecord(entry)) {
      const type = text(entry.type, `${name}.volumes[].type`);
      assert.ok(type === 'bind' || type === 'volume', `${name}: unsupported mount type ${type}`);
      return { type, source: text(entry.source, `${name} mount source`), target: text(entry.target, `${name} mount target`), readOnly: entry.read_only === true };
    }
    const parts = text(entry, `${name}.volumes entry`).split(':');
    assert.ok(parts.length >= 2, `${name}: anonymous volume ${parts[0]}; use a named volume or a bind mount`);
    const [source = '', target = '', mode = ''] = parts;
    const type = source.startsWith('.') || source.startsWith('/') || source.startsWith('~') ? 'bind' : 'volume';
    return { type, source, target, readOnly: mode.split(',').includes('ro') };
  });
}

/** depends_on in its long form: service -> condition. */
function dependsOn(name: string): Map<string, string> {
  const d = service(name).depends_on;
  const out = new Map<string, string>();
  if (d === undefined) return out;
  assert.ok(isRecord(d), `${name}.depends_on must use the long form (with conditions), not a list`);
  for (const [dep, spec] of Object.entries(d)) out.set(dep, text(record(spec, `${name}.depends_on.${dep}`).condition, `${name}.depends_on.${dep}.condition`));
  return out;
}

// ------------------------------------------------------------------------------------------------
// Image pins.

/** Why an image reference is not pinned to an exact version, or undefined if it is. */
function pinProblem(image: string): string | undefined {
  if (image.includes('$')) return 'uses variable interpolation, so the pin is not in the file';
  const at = image.indexOf('@');
  const ref = at < 0 ? image : image.slice(0, at);
  if (at >= 0 && !/^sha256:[0-9a-f]{64}$/.test(image.slice(at + 1))) return 'has a malformed digest';
  const colon = ref.lastIndexOf(':');
  if (colon < 0 || ref.slice(colon + 1).includes('/')) return 'has no tag';
  const tag = ref.slice(colon + 1);
  if (/latest|stable|edge|main|master|nightly/i.test(tag)) return `has the moving tag "${tag}"`;
  // major.minor[.patch[.build]], optionally followed by a variant suffix (e.g. 16.15-alpine3.24).
  if (!/^v?\d+\.\d+(?:\.\d+){0,2}(?:-[A-Za-z0-9][A-Za-z0-9._-]*)?$/.test(tag)) return `tag "${tag}" is not an exact version (want at least major.minor)`;
  return undefined;
}

function image(name: string): { repo: string; tag: string } {
  const ref = text(service(name).image, `${name}.image`).split('@')[0] ?? '';
  const colon = ref.lastIndexOf(':');
  return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

// ------------------------------------------------------------------------------------------------

test('the compose file defines the services the doc describes, and the doc names each service and image', () => {
  const names = Object.keys(services());
  for (const name of Object.values(SERVICES)) assert.ok(names.includes(name), `missing service ${name} (have: ${names.join(', ')})`);
  const doc = fs.readFileSync(DOC_FILE, 'utf8');
  for (const name of names) assert.ok(doc.includes(`\`${name}\``), `docs/temporal-compose.md does not mention service \`${name}\``);
  for (const name of names) {
    const img = text(service(name).image, `${name}.image`);
    assert.ok(doc.includes(`\`${img}\``), `docs/temporal-compose.md does not list image \`${img}\` of ${name}`);
  }
  assert.ok(doc.includes(path.basename(COMPOSE_FILE)), 'the doc must name the compose file');
});

test('the pin check rejects moving, missing and interpolated tags', () => {
  for (const bad of ['temporalio/ui', 'temporalio/ui:latest', 'postgres:16', 'postgres:16-alpine', 'temporalio/server:${TEMPORAL_VERSION}', 'localhost:5000/ui', 'temporalio/server:1.32.1@sha256:abc']) {
    assert.ok(pinProblem(bad) !== undefined, `${bad} should not count as pinned`);
  }
  for (const good of ['postgres:16.15', 'postgres:16.15-alpine3.24', 'temporalio/server:1.32.1', `temporalio/ui:2.54.1@sha256:${'0'.repeat(64)}`]) {
    assert.equal(pinProblem(good), undefined, `${good} should count as pinned`);
  }
});

test('every image is pinned to an exact version', () => {
  for (const [name, raw] of Object.entries(services())) {
    const s = record(raw, `service ${name}`);
    assert.equal(s.build, undefined, `${name}: builds an image; this file must only use pinned official images`);
    const img = text(s.image, `${name}.image`);
    const problem = pinProblem(img);
    assert.equal(problem, undefined, `${name}: image ${img} ${problem ?? ''}`);
  }
  // The official images, and the schema (shipped in admin-tools) at the server's exact version.
  assert.equal(image(SERVICES.postgres).repo, 'postgres');
  assert.match(image(SERVICES.server).repo, /^temporalio\/(server|auto-setup)$/);
  assert.equal(image(SERVICES.ui).repo, 'temporalio/ui');
  for (const name of [SERVICES.schema, SERVICES.setup]) {
    assert.equal(image(name).repo, 'temporalio/admin-tools', `${name} runs the admin-tools image`);
    assert.equal(image(name).tag, image(SERVICES.server).tag, `${name} must use the server's version (${image(SERVICES.server).tag})`);
  }
});

test('7233 and 8080 are published on 127.0.0.1 only, and nothing else is published', () => {
  const published: string[] = [];
  for (const name of Object.keys(services())) {
    assert.equal(service(name).expose, undefined, `${name}: no expose needed on the compose network`);
    for (const p of ports(name)) {
      assert.equal(p.hostIp, '127.0.0.1', `${name}: port ${p.raw} must be bound to 127.0.0.1 (local, trusted use: no TLS, no auth)`);
      published.push(`${name} ${p.published ?? '?'}->${p.target}`);
    }
  }
  assert.deepEqual(published.sort(), [`${SERVICES.server} 7233->7233`, `${SERVICES.ui} 8080->8080`].sort());
  // The frontend listens on its default gRPC port, the one published.
  assert.ok(!environment(SERVICES.server).has('FRONTEND_GRPC_PORT') || envVar(SERVICES.server, 'FRONTEND_GRPC_PORT') === '7233');
});

test('the UI and the setup job talk to the temporal frontend', () => {
  assert.equal(envVar(SERVICES.ui, 'TEMPORAL_ADDRESS'), `${SERVICES.server}:7233`);
  assert.equal(envVar(SERVICES.setup, 'TEMPORAL_ADDRESS'), `${SERVICES.server}:7233`);
  // The UI opens on the namespace the setup job creates.
  assert.equal(envVar(SERVICES.ui, 'TEMPORAL_DEFAULT_NAMESPACE'), envVar(SERVICES.setup, 'NAMESPACE'));
});

test('the server and the schema job use the postgresql service with its credentials', () => {
  const pg = environment(SERVICES.postgres);
  const user = pg.get('POSTGRES_USER');
  const password = pg.get('POSTGRES_PASSWORD');
  assert.ok(user && password, 'postgresql must set POSTGRES_USER and POSTGRES_PASSWORD');
  assert.equal(envVar(SERVICES.server, 'DB'), 'postgres12');
  assert.equal(envVar(SERVICES.server, 'POSTGRES_SEEDS'), SERVICES.postgres);
  assert.equal(envVar(SERVICES.server, 'POSTGRES_USER'), user);
  assert.equal(envVar(SERVICES.server, 'POSTGRES_PWD'), password);
  assert.equal(envVar(SERVICES.schema, 'POSTGRES_SEEDS'), SERVICES.postgres);
  assert.equal(envVar(SERVICES.schema, 'POSTGRES_USER'), user);
  assert.equal(envVar(SERVICES.schema, 'SQL_PASSWORD'), password);
});

test('services start in order: postgres healthy -> schema done -> server healthy -> setup and UI', () => {
  assert.equal(dependsOn(SERVICES.schema).get(SERVICES.postgres), 'service_healthy');
  assert.equal(dependsOn(SERVICES.server).get(SERVICES.postgres), 'service_healthy');
  assert.equal(dependsOn(SERVICES.server).get(SERVICES.schema), 'service_completed_successfully');
  assert.equal(dependsOn(SERVICES.setup).get(SERVICES.server), 'service_healthy');
  assert.equal(dependsOn(SERVICES.ui).get(SERVICES.server), 'service_healthy');
  // Every dependency exists, and every service waited on for health has a healthcheck.
  for (const name of Object.keys(services())) {
    for (const [dep, condition] of dependsOn(name)) {
      assert.ok(dep in services(), `${name} depends on unknown service ${dep}`);
      assert.ok(['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition), `${name}: unknown condition ${condition}`);
      if (condition === 'service_healthy') {
        const hc = record(service(dep).healthcheck, `${dep}.healthcheck (${name} waits for it to be healthy)`);
        assert.notEqual(hc.disable, true, `${dep}: healthcheck disabled`);
        assert.ok(list(hc.test, `${dep}.healthcheck.test`).length > 1, `${dep}: healthcheck has no command`);
      }
    }
  }
  // One-shot jobs must not be restarted forever (`no` must be quoted: YAML 1.1 reads it as false).
  for (const name of [SERVICES.schema, SERVICES.setup]) assert.equal(service(name).restart, 'no', `${name}.restart`);
});

test("VCCR's search attributes are created by the setup job, exactly as the code declares them", () => {
  const declared = envVar(SERVICES.setup, 'VCCR_SEARCH_ATTRIBUTES').trim().split(/\s+/).sort();
  const expected = Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([name, type]) => `${name}=${type}`).sort();
  assert.deepEqual(declared, expected, 'VCCR_SEARCH_ATTRIBUTES must list common/search-attributes.ts');
  assert.equal(envVar(SERVICES.setup, 'NAMESPACE'), '${TEMPORAL_NAMESPACE:-default}', 'the namespace follows VCCR TEMPORAL_NAMESPACE, default "default"');
  // The job runs the mounted script, and the script creates namespace and search attributes.
  const command = list(service(SERVICES.setup).command, `${SERVICES.setup}.command`).map((c) => text(c, 'command part'));
  const scriptMount = mounts(SERVICES.setup).find((m) => m.type === 'bind' && command.some((c) => c.startsWith(`${m.target}/`)));
  assert.ok(scriptMount, `${SERVICES.setup}: its command must run a script from a bind mount`);
  const scriptArg = command.find((c) => c.startsWith(`${scriptMount.target}/`)) ?? '';
  const script = fs.readFileSync(path.join(REPO, scriptMount.source, scriptArg.slice(scriptMount.target.length + 1)), 'utf8');
  assert.match(script, /temporal operator namespace create/);
  assert.match(script, /temporal operator search-attribute create/);
  assert.match(script, /VCCR_SEARCH_ATTRIBUTES/);
});

test('bind mounts exist in the repository, are read-only, and the dynamic config is one of them', () => {
  for (const name of Object.keys(services())) {
    for (const m of mounts(name).filter((x) => x.type === 'bind')) {
      assert.ok(m.source.startsWith('./'), `${name}: bind mount ${m.source} must be relative to the repository`);
      assert.ok(fs.existsSync(path.join(REPO, m.source)), `${name}: bind mount source ${m.source} does not exist`);
      assert.ok(m.readOnly, `${name}: bind mount ${m.source} must be read-only`);
      assert.ok(!m.source.includes('docker.sock') && !m.target.includes('docker.sock'), `${name}: must not mount the Docker socket`);
    }
  }
  const configPath = envVar(SERVICES.server, 'DYNAMIC_CONFIG_FILE_PATH');
  const dir = mounts(SERVICES.server).find((m) => m.type === 'bind' && configPath.startsWith(`${m.target}/`));
  assert.ok(dir, `DYNAMIC_CONFIG_FILE_PATH ${configPath} must be inside a bind mount of ${SERVICES.server}`);
  const hostFile = path.join(REPO, dir.source, configPath.slice(dir.target.length + 1));
  const config = record(loadYaml(hostFile), hostFile);
  for (const [key, values] of Object.entries(config)) {
    for (const v of list(values, `dynamic config ${key}`)) assert.ok('value' in record(v, `dynamic config ${key} entry`), `dynamic config ${key}: entry without value`);
  }
  assert.ok('system.forceSearchAttributesCacheRefreshOnRead' in config, 'new search attributes must be usable at once');
});

test('PostgreSQL keeps its data in a named volume', () => {
  const data = mounts(SERVICES.postgres).find((m) => m.target === '/var/lib/postgresql/data');
  assert.ok(data, 'postgresql must mount a volume at /var/lib/postgresql/data (PGDATA of the postgres 16 image)');
  assert.equal(data.type, 'volume');
  assert.ok(data.source in record(compose().volumes, 'top-level volumes'), `volume ${data.source} must be declared at top level`);
  assert.ok(Number(image(SERVICES.postgres).tag.split('.')[0]) < 18, 'postgres 18+ images keep data under /var/lib/postgresql; move the mount');
});

test('no service is privileged or shares a host namespace', () => {
  for (const name of Object.keys(services())) {
    const s = service(name);
    assert.notEqual(s.privileged, true, `${name}: privileged`);
    for (const key of ['network_mode', 'pid', 'ipc', 'uts', 'userns_mode', 'cgroup']) {
      assert.ok(s[key] === undefined || !/^host$/i.test(String(s[key])), `${name}: ${key}: host`);
    }
    assert.equal(s.cap_add, undefined, `${name}: adds capabilities`);
    assert.equal(s.devices, undefined, `${name}: gets host devices`);
    if (s.security_opt !== undefined) {
      for (const opt of list(s.security_opt, `${name}.security_opt`)) assert.ok(!/unconfined/.test(String(opt)), `${name}: ${String(opt)}`);
    }
  }
  const networks = compose().networks;
  for (const [net, spec] of Object.entries(isRecord(networks) ? networks : {})) {
    assert.ok(!isRecord(spec) || spec.driver !== 'host', `network ${net} uses the host driver`);
  }
});

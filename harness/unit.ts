// Starting a service from its systemd unit file where no systemd runs (this machine's test beds): the
// unit's own ExecStart, Environment/EnvironmentFile, StateDirectory and the parts of its sandbox that
// decide whether QEMU, taps and the store still work — CapabilityBoundingSet and NoNewPrivileges (through
// setpriv), ProtectSystem=full and ProtectHome=yes (read-only and hidden mounts in the machine). Not
// emulated, and said so: KillMode, Restart*, RestrictNamespaces, RestrictAddressFamilies, SystemCall*,
// Protect{Kernel*,ControlGroups,Clock}, UMask, the journal (output goes to a file).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Machine } from './lab';
import type { ProcessIdentity } from '../node/proc';

export type UnitFile = Map<string, string[]>;

/** The [Service] (and other) settings of a unit file: key → every value given, in order. */
export function parseUnit(text: string): UnitFile {
  const out: UnitFile = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1] ?? '';
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = `${section}.${line.slice(0, eq).trim()}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

/** systemd's specifiers we use: %i (instance) and %%. */
function expand(value: string, instance: string): string {
  return value.replace(/%([i%])/g, (_m, c: string) => (c === 'i' ? instance : '%'));
}

/** KEY=VALUE lines of an environment file (comments and blank lines skipped, optional quotes removed). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(raw);
    if (!m?.[1] || raw.trim().startsWith('#')) continue;
    env[m[1]] = (m[2] ?? '').trim().replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return env;
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface StartedUnit {
  process: ProcessIdentity;
  logFile: string;
  env: Record<string, string>;
}

/** Machines whose system folders were already made read-only (once is enough). */
const sandboxed = new WeakSet<Machine>();

/** The service of `unitPath` (a path inside the machine) started as systemd would start it, roughly. */
export function startUnit(machine: Machine, unitPath: string, options: { instance?: string; logDir: string }): StartedUnit {
  const instance = options.instance ?? '';
  const unit = parseUnit(machine.must(['cat', unitPath]));
  const get = (key: string) => (unit.get(`Service.${key}`) ?? []).map((v) => expand(v, instance));
  const env: Record<string, string> = { PATH: BASE_PATH, LANG: 'C.UTF-8' };
  for (const e of get('Environment')) {
    const [k, ...v] = e.split('=');
    if (k) env[k] = v.join('=');
  }
  // As systemd does, variables from EnvironmentFile= override Environment=.
  for (const f of get('EnvironmentFile')) {
    const optional = f.startsWith('-');
    const path = optional ? f.slice(1) : f;
    const r = machine.run(['cat', path]);
    if (r.status !== 0 && !optional) throw new Error(`${unitPath}: EnvironmentFile ${path} is missing`);
    if (r.status === 0) Object.assign(env, parseEnvFile(r.stdout));
  }
  for (const d of get('StateDirectory')) machine.must(['install', '-d', '-m', get('StateDirectoryMode')[0] ?? '0755', join('/var/lib', d)]);
  if (!sandboxed.has(machine)) {
    if (get('ProtectSystem')[0] === 'full') protectSystem(machine);
    if (get('ProtectHome')[0] === 'yes') protectHome(machine);
    sandboxed.add(machine);
  }
  const execStart = get('ExecStart')[0];
  if (!execStart) throw new Error(`${unitPath} has no ExecStart`);
  const argv = execStart.split(/\s+/);
  const caps = get('CapabilityBoundingSet')[0]?.split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  const setpriv = caps
    ? ['setpriv', '--bounding-set', ['-all', ...caps].join(','), '--inh-caps', '-all', ...(get('NoNewPrivileges')[0] === 'yes' ? ['--no-new-privs'] : []), '--']
    : [];
  const name = unitPath.split('/').pop()?.replace('@.service', `@${instance}.service`) ?? 'unit';
  const logFile = join(options.logDir, `${machine.name}-${name}.log`);
  const process = machine.spawn([...setpriv, 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], {}, logFile, name);
  return { process, logFile, env };
}

/** ProtectSystem=full: /usr (with /usr/local), /boot and /etc read-only. */
function protectSystem(m: Machine): void {
  m.must(['mount', '--rbind', '/usr', '/usr'], { cwd: '/' });
  m.must(['mount', '-o', 'remount,bind,ro', '/usr'], { cwd: '/' });
  m.must(['mount', '-o', 'remount,ro', '/usr/local'], { cwd: '/' });
  m.must(['mount', '-o', 'remount,ro', '/etc'], { cwd: '/' });
  if (m.run(['test', '-d', '/boot']).status === 0) {
    m.must(['mount', '--bind', '/boot', '/boot'], { cwd: '/' });
    m.must(['mount', '-o', 'remount,bind,ro', '/boot'], { cwd: '/' });
  }
}

/** ProtectHome=yes: /home, /root and /run/user empty and read-only. */
function protectHome(m: Machine): void {
  for (const d of ['/home', '/root', '/run/user']) {
    if (m.run(['test', '-d', d]).status === 0) m.must(['mount', '-t', 'tmpfs', '-o', 'ro,mode=0755,size=4k', 'tmpfs', d], { cwd: '/' });
  }
}

/** The unit file's text from the repository (for checks that do not need a machine). */
export function unitText(repoRoot: string, name: string): string {
  return readFileSync(join(repoRoot, 'deploy', 'systemd', name), 'utf8');
}

// The Node.js version our programs need (package.json "engines"): checked first thing by bin/ scripts, so
// an operator on Debian's own Node 18 reads what to install instead of a puzzling failure later.
const MINIMUM = [20, 3] as const;

export function requireNode(program: string, version: string = process.versions.node): void {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1])) return;
  process.stderr.write(`${program}: needs Node.js ${MINIMUM.join('.')} or newer, this is ${version} (install Node.js 20 LTS, e.g. from nodejs.org or NodeSource)\n`);
  process.exit(2);
}

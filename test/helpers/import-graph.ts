// The import graph of our TypeScript sources, read with the TypeScript parser (no type checking): which
// files and packages each file imports at run time. `import type`, `export type` and imports whose every
// name is a type are left out: the compiler erases them, so they pull nothing into a bundle.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

export interface ImportEdge {
  /** As written: './lock', 'node:fs', '@temporalio/workflow'. */
  specifier: string;
  /** 1-based line of the import in the importing file. */
  line: number;
  /** The file it resolves to (relative imports only). */
  file?: string;
}

/** The run-time imports of one source file (import, export … from, require(), import()). */
export function runtimeImports(file: string): ImportEdge[] {
  return importsOf(file, false);
}

/** Every import of one source file, type-only ones included when `withTypes`. */
export function importsOf(file: string, withTypes: boolean): ImportEdge[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const edges: ImportEdge[] = [];
  const add = (node: ts.Node, specifier: string) => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    const target = specifier.startsWith('.') ? resolveSource(dirname(file), specifier) : undefined;
    edges.push({ specifier, line, ...(target ? { file: target } : {}) });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && (withTypes || !typeOnlyImport(node))) {
      add(node, node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) && (withTypes || !typeOnlyExport(node))) {
      add(node, node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && (withTypes || !node.isTypeOnly) && ts.isExternalModuleReference(node.moduleReference)) {
      const expr = node.moduleReference.expression;
      if (ts.isStringLiteral(expr)) add(node, expr.text);
    } else if (ts.isCallExpression(node) && isRequireOrImport(node) && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      add(node, node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

function typeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // import './side-effect'
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

function typeOnlyExport(node: ts.ExportDeclaration): boolean {
  if (node.isTypeOnly) return true;
  const clause = node.exportClause;
  return clause !== undefined && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly);
}

function isRequireOrImport(node: ts.CallExpression): boolean {
  return node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require');
}

/** `./x` from `dir`: x.ts, or x/index.ts. */
export function resolveSource(dir: string, specifier: string): string | undefined {
  const base = resolve(dir, specifier);
  for (const candidate of [`${base}.ts`, join(base, 'index.ts'), base]) {
    if (candidate.endsWith('.ts') && existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

const BUILTINS = new Set(builtinModules);

/** True for Node's own modules, with or without the node: prefix (fs, node:fs, fs/promises). */
export function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0] ?? '');
}

/** The package an import names ('@temporalio/workflow/lib/x' → '@temporalio/workflow'). */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/** Every .ts file under `dir` (recursively), or only directly in it. */
export function sourceFiles(dir: string, recursive = true): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...sourceFiles(path, true));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

export interface Violation {
  /** root → … → the file with the offending import, relative to the root folder. */
  chain: string[];
  import: string;
  line: number;
  why: string;
}

export interface Boundary {
  /** Repository root: files are reported relative to it. */
  root: string;
  /** Files a reached file may live in: a predicate on its path relative to `root`. */
  mayReach: (relativePath: string) => boolean;
  /** Packages (not Node built-ins, never allowed) reached files may import. */
  packages: ReadonlySet<string>;
}

/**
 * Follows the run-time imports from `entries` and reports every import that leaves the boundary: a Node
 * built-in, a package not in the list, or a file outside the allowed folders — each with the import chain
 * that reaches it, so the message says how the bundle would pull it in.
 */
export function boundaryViolations(entries: string[], boundary: Boundary): Violation[] {
  const violations: Violation[] = [];
  const via = new Map<string, string | undefined>(entries.map((e) => [e, undefined]));
  const queue = [...entries];
  const rel = (file: string) => relative(boundary.root, file);
  const chainTo = (file: string): string[] => {
    const chain: string[] = [];
    for (let at: string | undefined = file; at !== undefined; at = via.get(at)) chain.unshift(rel(at));
    return chain;
  };
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const edge of runtimeImports(file)) {
      let why: string | undefined;
      if (edge.specifier.startsWith('.')) {
        if (!edge.file) why = 'cannot be resolved to a source file';
        else if (!boundary.mayReach(rel(edge.file))) why = `${rel(edge.file)} is outside the folders this code may import`;
        else if (!via.has(edge.file)) {
          via.set(edge.file, file);
          queue.push(edge.file);
        }
      } else if (isNodeBuiltin(edge.specifier)) why = 'a Node.js module';
      else if (!boundary.packages.has(packageOf(edge.specifier))) why = `package ${packageOf(edge.specifier)} is not one this code may use`;
      if (why) violations.push({ chain: chainTo(file), import: edge.specifier, line: edge.line, why });
    }
  }
  return violations;
}

/** One line per violation: `workflows/a.ts → common/b.ts:12 imports 'node:fs' (a Node.js module)`. */
export function describeViolation(v: Violation): string {
  return `${v.chain.join(' → ')}:${v.line} imports '${v.import}' (${v.why})`;
}

/**
 * Import cycles among `files` (strongly connected components of more than one file, or a self-import),
 * type-only imports included: a cycle through types still ties two modules into one.
 */
export function importCycles(files: string[], root: string): string[][] {
  const inSet = new Set(files);
  const edges = new Map(files.map((f) => [f, [...new Set(importsOf(f, true).flatMap((e) => (e.file && inSet.has(e.file) ? [e.file] : [])))]]));
  // Tarjan's algorithm.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const strongConnect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      if (component.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(component.map((f) => relative(root, f)).sort());
    }
  };
  for (const f of files) if (!index.has(f)) strongConnect(f);
  return cycles;
}

// A small driver for headless Chromium (Debian's `chromium` package) over the DevTools protocol, for the
// Web UI test. It talks CDP over a pipe (--remote-debugging-pipe: Chromium reads commands from fd 3 and
// writes replies and events to fd 4, each JSON message ended by a NUL byte), so it needs no WebSocket
// client and opens no port. The browser can reach loopback only: every other address goes to a proxy
// that does not exist, and host names other than 127.0.0.1 do not resolve.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { janitor } from './janitor';
import { identify, isAlive, sleep, terminate, type ProcessIdentity } from '../node/proc';

export const CHROMIUM = '/usr/lib/chromium/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox', // runs as root; the pages are our own UI on loopback
  '--remote-debugging-pipe',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions',
  '--metrics-recording-only',
  '--mute-audio',
  '--hide-scrollbars',
  // Loopback only (loopback bypasses a proxy; everything else goes to one that is not there).
  '--proxy-server=http://127.0.0.1:9',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

type Json = Record<string, unknown>;
interface FrameTree {
  frame: { id: string };
  childFrames?: FrameTree[];
}
interface Pending {
  resolve: (result: Json) => void;
  reject: (err: Error) => void;
}

export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: Array<(method: string, params: Json, sessionId?: string) => void> = [];
  private buffer = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly id: ProcessIdentity,
    private readonly profile: string,
    private readonly commands: Writable,
  ) {}

  static available(): boolean {
    return existsSync(CHROMIUM);
  }

  static async launch(options: { width?: number; height?: number } = {}): Promise<Browser> {
    if (!Browser.available()) throw new Error(`${CHROMIUM} not found: run \`bash scripts/setup.sh\` (Debian package chromium)`);
    const profile = mkdtempSync('/tmp/vccr-chromium-');
    janitor.trackPath(profile);
    const size = `--window-size=${options.width ?? 1440},${options.height ?? 1000}`;
    const child = spawn(CHROMIUM, [...FLAGS, size, `--user-data-dir=${profile}`, 'about:blank'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    });
    const id = child.pid === undefined ? undefined : identify(child.pid);
    if (!id) throw new Error('chromium did not start');
    janitor.trackProcess(id.pid, 'chromium (web UI test)');
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const browser = new Browser(child, id, profile, child.stdio[3] as Writable);
    (child.stdio[4] as Readable).on('data', (d: Buffer) => browser.receive(d.toString('utf8')));
    child.once('exit', () => {
      for (const p of browser.pending.values()) p.reject(new Error(`chromium exited; its last words: ${stderr.slice(-1000)}`));
      browser.pending.clear();
    });
    await browser.send('Browser.getVersion');
    return browser;
  }

  /** Sends one DevTools command (to a page when `sessionId` is given) and waits for its reply. */
  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.commands.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  /** Opens a new tab and attaches to it. */
  async newPage(): Promise<Page> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new Page(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    return page;
  }

  onEvent(listener: (method: string, params: Json, sessionId?: string) => void): () => void {
    this.listeners.push(listener);
    return () => this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  async close(): Promise<void> {
    if (isAlive(this.id)) {
      await this.send('Browser.close').catch(() => undefined);
      const deadline = Date.now() + 5000;
      while (isAlive(this.id) && Date.now() < deadline) await sleep(50);
      await terminate(this.id, 'SIGKILL');
    }
    janitor.untrackProcess(this.id);
    this.child.removeAllListeners();
    rmSync(this.profile, { recursive: true, force: true });
    janitor.untrackPath(this.profile);
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf('\0'); end >= 0; end = this.buffer.indexOf('\0')) {
      const message = JSON.parse(this.buffer.slice(0, end)) as { id?: number; result?: Json; error?: { message: string }; method?: string; params?: Json; sessionId?: string };
      this.buffer = this.buffer.slice(end + 1);
      if (message.id !== undefined) {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) p?.reject(new Error(`DevTools: ${message.error.message}`));
        else p?.resolve(message.result ?? {});
      } else if (message.method) {
        for (const l of [...this.listeners]) l(message.method, message.params ?? {}, message.sessionId);
      }
    }
  }
}

export class Page {
  constructor(
    private readonly browser: Browser,
    readonly sessionId: string,
  ) {}

  send(method: string, params: Json = {}): Promise<Json> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Navigates and waits for the page's load event. */
  async goto(url: string, timeoutMs = 30_000): Promise<void> {
    let off = () => {};
    const loaded = new Promise<void>((resolve) => {
      off = this.browser.onEvent((method, _params, sessionId) => {
        if (sessionId === this.sessionId && method === 'Page.loadEventFired') resolve();
      });
    });
    try {
      const reply = (await this.send('Page.navigate', { url })) as { errorText?: string };
      if (reply.errorText) throw new Error(`cannot open ${url}: ${reply.errorText}`);
      await Promise.race([loaded, sleep(timeoutMs).then(() => Promise.reject(new Error(`${url} did not load within ${timeoutMs} ms`)))]);
    } finally {
      off();
    }
  }

  /** Evaluates a JavaScript expression in the page; returns its (JSON) value. */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = (await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (reply.exceptionDetails) throw new Error(`in the page: ${reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text}`);
    return reply.result.value as T;
  }

  /**
   * The page's rendered text, as document.body.innerText gives it, followed by that of every frame in it
   * (the Web UI renders markdown — a workflow's details — inside sandboxed iframes).
   */
  async text(): Promise<string> {
    const main = await this.evaluate<string>('document.body ? document.body.innerText : ""');
    const { frameTree } = (await this.send('Page.getFrameTree')) as { frameTree: FrameTree };
    const frames: string[] = [];
    const visit = (tree: FrameTree) => (tree.childFrames ?? []).forEach((child) => (frames.push(child.frame.id), visit(child)));
    visit(frameTree);
    const texts = await Promise.all(frames.map((frameId) => this.frameText(frameId).catch(() => '')));
    return [main, ...texts.filter((t) => t)].join('\n');
  }

  private async frameText(frameId: string): Promise<string> {
    const { executionContextId } = (await this.send('Page.createIsolatedWorld', { frameId, worldName: 'vccr-text' })) as { executionContextId: number };
    const reply = (await this.send('Runtime.evaluate', {
      expression: 'document.body ? document.body.innerText : ""',
      contextId: executionContextId,
      returnByValue: true,
    })) as { result: { value?: string } };
    return reply.result.value ?? '';
  }

  /** Waits until the rendered text matches every pattern; returns the text. */
  async waitForText(patterns: RegExp[], timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let text = '';
    for (;;) {
      text = await this.text();
      const missing = patterns.filter((p) => !p.test(text));
      if (missing.length === 0) return text;
      if (Date.now() > deadline) {
        throw new Error(`the page does not show ${missing.map(String).join(', ')} after ${timeoutMs} ms; it shows:\n${text.slice(0, 3000)}`);
      }
      await sleep(250);
    }
  }

  /** Waits until the rendered text no longer matches (a drawer closed, a spinner went away). */
  async waitForGone(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (pattern.test(await this.text())) {
      if (Date.now() > deadline) throw new Error(`the page still shows ${String(pattern)} after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Clicks the first element whose text is exactly `label` (a button, tab or link). */
  async click(label: string): Promise<void> {
    const clicked = await this.evaluate<boolean>(`(() => {
      const label = ${JSON.stringify(label)};
      const all = [...document.querySelectorAll('button, a, [role="tab"], summary, label')];
      // A tab may show a count on a second line (Event History, 84): compare the first line.
      const el = all.find((e) => e.innerText && e.innerText.trim().split('\\n')[0].trim() === label);
      if (!el) return false;
      el.scrollIntoView({ block: 'center' });
      el.click();
      return true;
    })()`);
    if (!clicked) throw new Error(`nothing labelled "${label}" to click`);
  }

  /** Saves a PNG of what the window shows (or of the whole page). */
  async screenshot(path: string, options: { fullPage?: boolean } = {}): Promise<void> {
    const params: Json = { format: 'png' };
    if (options.fullPage) {
      const { cssContentSize } = (await this.send('Page.getLayoutMetrics')) as { cssContentSize: { width: number; height: number } };
      params['captureBeyondViewport'] = true;
      params['clip'] = { x: 0, y: 0, width: cssContentSize.width, height: cssContentSize.height, scale: 1 };
    }
    const { data } = (await this.send('Page.captureScreenshot', params)) as { data: string };
    writeFileSync(path, Buffer.from(data, 'base64'));
  }
}

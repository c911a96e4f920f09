// `make install` (docs/operations.md "Running under systemd"): run on a copy of the source tree,
// without root privileges (as nobody when the tests run as root), honouring CC/CFLAGS/LDFLAGS.
// It installs the binary, turnkey(8) covering every option, command and signal, an example
// configuration that documents every option and reads back as the same configuration, and a
// hardened systemd unit that `systemd-analyze verify` accepts.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, cpSync, writeFileSync, readFileSync, statSync, existsSync, chmodSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const asRoot = process.getuid() === 0;
const NOBODY = 65534;
const mode = (p) => statSync(p).mode & 0o777;

// make, as nobody when we are root (so nothing needs root), with a time bound.
function make(dir, args, env = {}) {
  const r = spawnSync('make', ['-C', dir, ...args], {
    encoding: 'utf8', timeout: 900000, killSignal: 'SIGKILL',
    env: { PATH: process.env.PATH, HOME: dir, ...env },
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  return { code: r.status, signal: r.signal, out: `${r.stdout}\n${r.stderr}` };
}

function chownTree(p) {
  if (!asRoot) return;
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, p]);
}

// Option names from `turnkey serve --help`.
function helpOptions(bin) {
  const help = execFileSync(bin, ['serve', '--help'], { encoding: 'utf8' });
  return [...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]);
}

function unitKeys(text) {
  const keys = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sec = line.match(/^\[(\w+)\]$/);
    if (sec) { section = sec[1]; continue; }
    const i = line.indexOf('=');
    assert.ok(i > 0, `unit line '${line}' is key=value`);
    const k = `${section}.${line.slice(0, i)}`;
    (keys[k] ??= []).push(line.slice(i + 1));
  }
  return keys;
}

describe('make install', () => {
  let work, src, stage, prefix, ccLog;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'turnkey-install-'));
    chmodSync(work, 0o755);
    src = join(work, 'src-copy');
    for (const p of ['Makefile', 'src', 'include', 'man', 'dist'])
      cpSync(join(ROOT, p), join(src, p), { recursive: true });
    // a CC that records how it is called, to show CC/CFLAGS/LDFLAGS are honoured
    ccLog = join(work, 'cc.log');
    writeFileSync(join(work, 'cc-wrapper'), `#!/bin/sh\necho "$*" >> ${ccLog}\nexec cc "$@"\n`, { mode: 0o755 });
    stage = join(work, 'stage');
    prefix = join(work, 'prefix');
    chownTree(work);
  });
  after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

  test('DESTDIR install without root, with the caller\'s CC, CFLAGS and LDFLAGS', () => {
    const r = make(src, ['-j2', 'install', 'PREFIX=/usr/local', `DESTDIR=${stage}`,
      `CC=${join(work, 'cc-wrapper')}`, 'CFLAGS=-O0 -DTK_INSTALL_PROBE', 'LDFLAGS=-Wl,-z,now']);
    assert.equal(r.code, 0, r.out.slice(-3000));
    const calls = readFileSync(ccLog, 'utf8').trim().split('\n');
    const compiles = calls.filter((l) => / -c /.test(l));
    assert.ok(compiles.length >= 20, `compiled with the given CC (${compiles.length} calls)`);
    for (const l of compiles) assert.match(l, /-DTK_INSTALL_PROBE/, `CFLAGS in: ${l}`);
    const links = calls.filter((l) => !/ -c /.test(l));
    assert.ok(links.some((l) => /-Wl,-z,now/.test(l) && /-o build\/release\/turnkey\b/.test(l)), `LDFLAGS on the link: ${links.join('\n')}`);

    const bin = join(stage, 'usr/local/bin/turnkey');
    assert.equal(mode(bin), 0o755);
    assert.match(execFileSync(bin, ['version'], { encoding: 'utf8' }), /^turnkey \d+\.\d+\.\d+/);
    for (const [p, m] of [['usr/local/share/man/man8/turnkey.8', 0o644],
      ['usr/local/share/doc/turnkey/turnkey.conf.example', 0o644],
      ['usr/local/lib/systemd/system/turnkey.service', 0o644],
      ['etc/turnkey/turnkey.conf', 0o644]])
      assert.equal(mode(join(stage, p)), m, p);
    const unit = readFileSync(join(stage, 'usr/local/lib/systemd/system/turnkey.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/turnkey serve --config \/etc\/turnkey\/turnkey.conf$/m);
    assert.doesNotMatch(unit, /@[A-Z]+@/, 'every placeholder filled in');
  });

  test('the example configuration documents every option and reads back as the same configuration', () => {
    const bin = join(stage, 'usr/local/bin/turnkey');
    const example = readFileSync(join(stage, 'usr/local/share/doc/turnkey/turnkey.conf.example'), 'utf8');
    const opts = helpOptions(bin).filter((o) => o !== 'config');
    assert.ok(opts.length >= 20);
    for (const o of opts) assert.match(example, new RegExp(`^#?${o} = `, 'm'), `example names ${o}`);
    const printed = execFileSync(bin, ['serve', '--print-config'], { encoding: 'utf8', env: {} });
    assert.equal(example, printed, 'the installed example is what the binary prints');
    const file = join(work, 'example.conf');
    writeFileSync(file, example);
    assert.equal(execFileSync(bin, ['serve', '--config', file, '--print-config'], { encoding: 'utf8', env: {} }), example);
    // the system file differs only in the data directory
    const etc = readFileSync(join(stage, 'etc/turnkey/turnkey.conf'), 'utf8');
    assert.match(etc, /^data = \/var\/lib\/turnkey$/m);
    assert.equal(etc.replace('data = /var/lib/turnkey', '#data = ./var'), example);
    // uncommenting every default gives a valid file with the same meaning
    const active = example.replace(/^#([a-z0-9-]+) = (?!\(none\)$)/gm, '$1 = ');
    writeFileSync(file, active);
    assert.equal(execFileSync(bin, ['serve', '--config', file, '--print-config'], { encoding: 'utf8', env: {} }), example);
  });

  test('turnkey(8) covers every option, command, signal and file, and renders without warnings', () => {
    const bin = join(stage, 'usr/local/bin/turnkey');
    const man = readFileSync(join(stage, 'usr/local/share/man/man8/turnkey.8'), 'utf8');
    const roffName = (o) => o.replace(/-/g, '\\\\-');
    for (const o of [...helpOptions(bin), 'print-config', 'help'])
      assert.match(man, new RegExp(`\\\\-\\\\-${roffName(o)}\\b`), `man page documents --${o}`);
    for (const c of ['serve', 'account create', 'account list', 'token create', 'token list', 'token revoke', 'key list', 'store copy', 'version'])
      assert.match(man, new RegExp(`^\\.B(R)? "?${c}`, 'm'), `man page documents ${c}`);
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'])
      assert.match(man, new RegExp(`^\\.B ${s}$`, 'm'), `man page documents ${s}`);
    for (const s of ['SIGNALS', 'FILES', 'OPTIONS', 'COMMANDS', 'CONFIGURATION FILE', 'EXIT STATUS'])
      assert.match(man, new RegExp(`^\\.SH ${s}$`, 'm'));
    if (have('groff')) {
      const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', join(stage, 'usr/local/share/man/man8/turnkey.8')], { encoding: 'utf8' });
      assert.equal(r.status, 0);
      assert.equal(r.stderr, '', 'no groff warnings');
    }
  });

  test('the systemd unit is hardened and systemd-analyze verify accepts it', () => {
    // a real PREFIX (no DESTDIR) so ExecStart names an existing binary
    const r = make(src, ['install', `PREFIX=${prefix}`, `SYSCONFDIR=${prefix}/etc`,
      `CC=${join(work, 'cc-wrapper')}`, 'CFLAGS=-O0 -DTK_INSTALL_PROBE', 'LDFLAGS=-Wl,-z,now']);
    assert.equal(r.code, 0, r.out.slice(-3000));
    const unitPath = join(prefix, 'lib/systemd/system/turnkey.service');
    const k = unitKeys(readFileSync(unitPath, 'utf8'));
    const one = (key) => { assert.ok(k[key], `${key} is set`); return k[key].at(-1); };
    assert.equal(one('Service.ExecStart'), `${prefix}/bin/turnkey serve --config ${prefix}/etc/turnkey/turnkey.conf`);
    assert.ok(existsSync(`${prefix}/etc/turnkey/turnkey.conf`));
    assert.match(one('Service.ExecReload'), /kill -HUP \$MAINPID$/);
    for (const [key, want] of Object.entries({
      'Service.LimitNOFILE': '1048576', 'Service.StateDirectory': 'turnkey', 'Service.StateDirectoryMode': '0700',
      'Service.DynamicUser': 'yes', 'Service.UMask': '0077',
      'Service.AmbientCapabilities': 'CAP_NET_BIND_SERVICE', 'Service.CapabilityBoundingSet': 'CAP_NET_BIND_SERVICE',
      'Service.NoNewPrivileges': 'yes', 'Service.ProtectSystem': 'strict', 'Service.ProtectHome': 'yes',
      'Service.PrivateTmp': 'yes', 'Service.PrivateDevices': 'yes', 'Service.KillSignal': 'SIGTERM',
      'Install.WantedBy': 'multi-user.target',
    })) assert.equal(one(key), want, key);
    assert.deepEqual(one('Service.RestrictAddressFamilies').split(' ').sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
    assert.ok(k['Service.SystemCallFilter'].includes('@system-service'));
    // systemd must wait for the drain before its SIGKILL
    const example = readFileSync(join(prefix, 'share/doc/turnkey/turnkey.conf.example'), 'utf8');
    const drain = Number(example.match(/^#drain-timeout = (\d+)$/m)[1]);
    assert.ok(Number(one('Service.TimeoutStopSec')) > drain, `TimeoutStopSec > drain-timeout (${drain})`);
    if (have('systemd-analyze')) {
      const v = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8', env: { ...process.env, MANPATH: join(prefix, 'share/man') } });
      assert.equal(v.status, 0, `systemd-analyze verify: ${v.stdout}${v.stderr}`);
      const s = spawnSync('systemd-analyze', ['security', '--offline=true', unitPath], { encoding: 'utf8' });
      const m = `${s.stdout}${s.stderr}`.match(/Overall exposure level for turnkey.service: ([\d.]+)/);
      assert.ok(m, `systemd-analyze security: ${s.stdout}${s.stderr}`);
      assert.ok(Number(m[1]) <= 2.5, `exposure level ${m[1]} (systemd calls below 3 OK)`);
    }
  });

  test('a second install keeps an edited SYSCONFDIR/turnkey/turnkey.conf; uninstall leaves it', () => {
    const conf = join(prefix, 'etc/turnkey/turnkey.conf');
    writeFileSync(conf, 'realm = edited\n');
    let r = make(src, ['install', `PREFIX=${prefix}`, `SYSCONFDIR=${prefix}/etc`]);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.equal(readFileSync(conf, 'utf8'), 'realm = edited\n');
    r = make(src, ['uninstall', `PREFIX=${prefix}`, `SYSCONFDIR=${prefix}/etc`]);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.ok(!existsSync(join(prefix, 'bin/turnkey')));
    assert.ok(!existsSync(join(prefix, 'lib/systemd/system/turnkey.service')));
    assert.equal(readFileSync(conf, 'utf8'), 'realm = edited\n');
    assert.deepEqual(readdirSync(join(prefix, 'bin')), []);
  });
});

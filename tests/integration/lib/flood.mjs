// A child process that floods one TURN TCP or TLS connection with Binding requests for a
// bounded time (respecting backpressure) and reads and discards the answers, so a test can
// check the server keeps serving others meanwhile. Usage:
//   node flood.mjs PORT tcp|tls DURATION_MS
// Prints "written N answered-bytes M" on exit.
import net from 'node:net';
import tls from 'node:tls';
import { CLASS, METHOD, encodeMessage, newTxid } from './stun.mjs';

const [port, mode, duration] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
const one = () => encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, txid: newTxid(), attrs: [] });
const chunk = Buffer.concat(Array.from({ length: 800 }, one)); // 16 KB of 20-byte requests
const opts = { host: '127.0.0.1', port };
const sock = mode === 'tls' ? tls.connect({ ...opts, rejectUnauthorized: false }) : net.connect(opts);
let written = 0, answered = 0, stop = false;
sock.on('data', (d) => { answered += d.length; });
sock.on('error', () => { stop = true; });
sock.on('close', () => { stop = true; });
const end = () => { process.stdout.write(`written ${written} answered-bytes ${answered}\n`); sock.destroy(); process.exit(0); };
setTimeout(() => { stop = true; end(); }, duration);
sock.once(mode === 'tls' ? 'secureConnect' : 'connect', () => {
  process.stdout.write('connected\n');
  const pump = () => {
    while (!stop) {
      written += chunk.length;
      if (!sock.write(chunk)) { sock.once('drain', pump); return; }
    }
  };
  pump();
});

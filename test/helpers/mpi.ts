// The checksum vccr-mpi-check prints on success, computed independently from guest/README.md's definition.

const M64 = (1n << 64n) - 1n;
const MAGIC = 0x564d5049424c4b31n;

function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** FNV-1a-64 of the block `sender` sends in iteration k (header and payload, little-endian u64s). */
function blockChecksum(sender: bigint, k: bigint, words: number): bigint {
  const buf = Buffer.alloc((4 + words) * 8);
  [MAGIC, sender, k, BigInt(words)].forEach((v, i) => buf.writeBigUInt64LE(v, i * 8));
  for (let j = 0; j < words; j++) {
    buf.writeBigUInt64LE(splitmix64((sender << 48n) ^ (k << 20n) ^ BigInt(j) ^ 0x5643435200000000n), (4 + j) * 8);
  }
  // 64-bit FNV-1a with two 32-bit halves (BigInt per byte would take seconds).
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const b of buf) {
    lo = (lo ^ b) >>> 0;
    // multiply (hi:lo) by the FNV prime 0x100000001b3 = 2^40 + 0x1b3, mod 2^64
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x100000000);
    const newLo = loMul >>> 0;
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0; // lo * 2^40 contributes lo << 8 to the high word
    lo = newLo;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export function expectedChecksum(ranks: number, iterations: number, words: number): string {
  const p = BigInt(ranks);
  const mix = (a: bigint, k: bigint, s: bigint, c: bigint): bigint => splitmix64(a ^ splitmix64(k ^ splitmix64(s ^ splitmix64(c))));
  const blocks = new Map<string, bigint>();
  let checksum = 0n;
  for (let q = 0n; q < p; q++) {
    const from = (q + p - 1n) % p;
    let acc = 0n;
    for (let k = 1n; k <= BigInt(iterations); k++) {
      const key = `${from}/${k}`;
      const c = blocks.get(key) ?? blockChecksum(from, k, words);
      blocks.set(key, c);
      const sum = (k * k * ((p * (p + 1n)) / 2n) + (p * (p - 1n)) / 2n) & M64;
      acc = mix(acc, k, sum, c);
    }
    checksum = splitmix64(checksum ^ acc);
  }
  return checksum.toString(16).padStart(16, '0');
}


// Stable MAC addresses derived from names (pure JS: workflows use it too, and they cannot import crypto).
// A restored guest must see the same MAC it had, so the address is a function of cluster, VM and NIC.

function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** 52:54:00 is QEMU's locally administered prefix; the low three bytes come from the names. */
export function deriveMac(cluster: string, vm: string, nic: string): string {
  const h = fnv1a32(`${cluster}\u0000${vm}\u0000${nic}`);
  const bytes = [0x52, 0x54, 0x00, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// How a host's transfer-progress report moves a VM's byte counts. A pure function, so the ordering rule is
// tested without a server: reports travel as signals and may arrive after the phase set the final figures.
import type { TransferProgress, VmProgress } from '../common/messages';

/**
 * Applies transfer reports to the VMs' byte counts. Counts only grow, and a VM whose figures were settled by
 * its phase's result (the saved file's size, say) keeps them: a report sent before the result but delivered
 * after it would otherwise bring back the RAM size as the total and leave a finished save below 100 %.
 */
export function applyTransferReports(vms: Record<string, VmProgress>, reports: TransferProgress[], settled: ReadonlySet<string>): void {
  for (const r of reports) {
    const vm = vms[r.vm];
    if (!vm || settled.has(r.vm)) continue;
    vm.bytesDone = Math.max(vm.bytesDone, r.bytesDone);
    vm.bytesTotal = Math.max(vm.bytesTotal, r.bytesTotal);
  }
}

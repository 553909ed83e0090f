// The pause guard: everything that makes sure a VM this host paused for a checkpoint runs again by the end of
// the cluster's pause bound, whatever happens to the controller, the Temporal server, the network or this
// worker. One unit with this one entry point; the rest of the host code uses only what is exported here.
//
//   lease.ts     pause leases: one file per VM (held → abandoning → released | expired), read by both parts
//   watchdog.ts  the worker's part (PauseWatchdog): writes the leases as the protocol moves, refuses late
//                steps of an ended checkpoint, and resumes a VM itself at its lease deadline
//   spawn.ts     ensurePauseGuard(): starts the detached guard process once per host state folder
//   process.ts   the detached guard process: outlives the worker and resumes, over each VM's second QMP
//                monitor, any VM whose lease ran out when the worker did not (it died)
//   resume.ts    what both do at a deadline: end the save's migration, then cont
export { PauseWatchdog, type GuardedHost } from './watchdog';
export { ensurePauseGuard } from './spawn';
export type { PauseLease } from './lease';

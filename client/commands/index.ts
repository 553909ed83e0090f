// Every `vccr` command. Adding one is a matter of a new file in this folder and one line here.
import type { Command } from './command';
import { up } from './up';
import { checkpoint } from './checkpoint';
import { restart } from './restart';
import { checkpointsDelete, checkpointsList, checkpointsShow, checkpointsVerify } from './checkpoints';
import { status } from './status';
import { down } from './down';
import { doctor } from './doctor';
import { protect } from './protect';
import { recover } from './recover';

export const COMMANDS: readonly Command[] = [
  up,
  protect,
  recover,
  checkpoint,
  restart,
  checkpointsList,
  checkpointsShow,
  checkpointsVerify,
  checkpointsDelete,
  status,
  down,
  doctor,
];

export type { Command } from './command';

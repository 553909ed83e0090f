// The benchmark's sections, in the order they run (`--only` picks some). Adding one: a file in this folder
// that exports defineSection({...}), and a line here.
import type { RegisteredSection } from '../section';
import { diskSection } from './disk';
import { guestSection } from './guest';
import { ramSection } from './ram';
import { tinySection } from './tiny';
import { protectBenchSection } from './protect';
import { liveSection, liveTinySection } from './live';

export const SECTIONS: RegisteredSection[] = [guestSection, ramSection, liveSection, diskSection, tinySection, liveTinySection, protectBenchSection];

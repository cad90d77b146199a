export { restore, select, type RestoreOptions, type RestoreReport, type RestoreProgress, type RestoreProblem } from "./restore";
export { drill, sample, type DrillOptions, type DrillReport, type DrillSourceResult } from "./drill";
export { ArchiveSource, TargetSource, checkKey, type RestoreSource, type SourceObject } from "./source";
export { loadTargetSpec, type TargetSpec } from "./spec";

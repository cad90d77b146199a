export { checkDisk, type DiskCheckOptions, type DiskReport, type DiskProblem } from "./check";
export { measurePath, levelOf, parseSize, parsePercent, DEFAULT_THRESHOLDS, type PathSpace, type Thresholds, type Level } from "./space";
export { computeVolume, type VolumeStats, type VolumeTable, type DayVolume, type Projection } from "./volume";

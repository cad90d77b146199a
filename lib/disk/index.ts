export { checkDisk, type DiskCheckOptions, type DiskReport } from "./check";
export { measurePath, levelOf, parseSize, parsePercent, parseThresholds, DEFAULT_THRESHOLDS, type ThresholdFields, type PathSpace, type Thresholds, type Level } from "./space";
export { computeVolume, type VolumeStats, type VolumeTable, type DayVolume, type Projection } from "./volume";

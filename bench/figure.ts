/** One benchmark figure: a value beside a baseline measured in the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  baselineName: string;
  ratio: number;
  /** CPU milliseconds all of the pool's processes spent per MB moved, where measured (transport). */
  cpuMsPerMb?: number;
  /** The same for the baseline's processes (transport: both ends of the raw echo). */
  baselineCpuMsPerMb?: number;
}

/**
 * The reference figures from CLAIM.md, with their sources: H100 peaks and MLPerf results,
 * phone tiers, fleet size, availability, throttling, redundancy, network. A table.
 */
import type { Figure, Profiles } from "./profile-schema.js";

const s = (value: number, unit: string, source: string): Figure => ({ value, unit, kind: "sourced", source });
const a = (value: number, unit: string, source: string): Figure => ({ value, unit, kind: "assumed", source });

const SXM = "NVIDIA H100 datasheet, SXM, dense (sparse figures are 2x)";
const PCIE = "NVIDIA H100 PCIe product brief, dense";
const MLPERF_MOBILE = "MLPerf Mobile v4.0/v5.0 (mlcommons/mobile_results_v4.0, v5.0), MobileNetV4 offline";
const TIER_PEAK = "assumed: flagship NPU peak x (this tier's MLPerf MobileNetV4 rate / flagship's); vendors publish no phone TOPS for these chips";

/** The figures from CLAIM.md, with their sources. */
export const DEFAULT_PROFILES: Profiles = {
  h100: {
    sxm: {
      fp32: s(67, "TFLOPS", SXM),
      tf32: s(495, "TFLOPS", SXM),
      fp16: s(989, "TFLOPS", `${SXM}; BF16 and FP16 are the same`),
      fp8: s(1979, "TFLOPS", SXM),
      int8: s(1979, "TOPS", SXM),
    },
    pcie: {
      fp32: s(51, "TFLOPS", PCIE),
      tf32: s(378, "TFLOPS", PCIE),
      fp16: s(756, "TFLOPS", `${PCIE}; BF16 and FP16 are the same`),
      fp8: s(1513, "TFLOPS", PCIE),
      int8: s(1513, "TOPS", PCIE),
    },
    memoryBandwidth: s(3.35, "TB/s", "NVIDIA H100 datasheet, SXM"),
    power: s(700, "W", "NVIDIA H100 datasheet, SXM"),
    priceLow: s(25_000, "USD", "press reports 2023-2024"),
    priceHigh: s(40_000, "USD", "press reports 2023-2024"),
    resnet50SamplesPerSec: s(
      88_714,
      "samples/s",
      "MLPerf Inference v4.0, closed/NVIDIA, DGX-H100_H100-SXM-80GBx1_TRT, resnet50 Offline (TensorRT INT8)",
    ),
    bert99SamplesPerSec: s(9_082, "samples/s", "MLPerf Inference v4.0, closed/NVIDIA, DGX-H100_H100-SXM-80GBx1_TRT, bert-99 Offline"),
    matmulBf16Measured: s(790, "TFLOP/s", "8192^3 BF16 matmul with PyTorch on an H100 (CLAIM.md: ~790-800)"),
    utilization: {
      low: s(0.38, "fraction of peak", "Meta, The Llama 3 Herd of Models (2024): 38-43% BF16 MFU on H100 at scale"),
      central: a(0.4, "fraction of peak", "assumed: within the Llama 3 paper's 38-43% H100 utilization"),
      high: s(0.43, "fraction of peak", "Meta, The Llama 3 Herd of Models (2024): 38-43% BF16 MFU on H100 at scale"),
    },
  },
  models: {
    resnet50Flops: s(8.2e9, "FLOP/sample", "ResNet paper / common model cards: ~4.1 GMAC per 224x224 image"),
    mobilenetV4Flops: a(
      11.8e9,
      "FLOP/sample",
      "assumed: ~5.9 GMAC for MobileNetV4-Conv-L at 384x384 (MobileNetV4 paper, Qin et al. 2024); used to scale MLPerf Mobile rates to other models by FLOPs",
    ),
    resnet50Tolerance: a(0.1, "relative", "assumed: a model within 10% of ResNet-50's FLOPs is compared with the MLPerf ResNet-50 result"),
  },
  phones: {
    flagship: {
      npuTops: s(45, "TOPS", "Snapdragon 8 Gen 3 / 8 Elite NPU, secondary sources (Qualcomm publishes none for phones): estimate"),
      gpuTflops: s(3, "TFLOPS", "spec aggregators: flagship Android GPU FP32 2-4 TFLOPS (A17 Pro ~2.1)"),
      mlperfSamplesPerSec: s(1638, "samples/s", `${MLPERF_MOBILE}, Snapdragon 8 Gen 3`),
      share: a(0.2, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    mid: {
      npuTops: a(9.1, "TOPS", TIER_PEAK),
      gpuTflops: s(0.5, "TFLOPS", "spec aggregators: mid-range Adreno GPU FP32 ~0.5 TFLOPS"),
      mlperfSamplesPerSec: s(331, "samples/s", `${MLPERF_MOBILE}, Snapdragon 7 Gen 3`),
      share: a(0.45, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    low: {
      npuTops: a(5.3, "TOPS", TIER_PEAK),
      gpuTflops: a(0.2, "TFLOPS", "assumed: below the ~0.5 TFLOPS of a mid-range Adreno"),
      mlperfSamplesPerSec: s(194, "samples/s", `${MLPERF_MOBILE}, Snapdragon 7s Gen 3`),
      share: a(0.35, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    sd8EliteMlperfSamplesPerSec: s(2005, "samples/s", "MLPerf Mobile v5.0, closed/Qualcomm, SD8Elite, MobileNetV4-L offline"),
    appleNpuTops: s(35, "TOPS", "Apple announcements: A17 Pro / A18 Pro Neural Engine, INT8"),
  },
  fleet: {
    devices: a(1e9, "devices", "the claim: a billion phones"),
    smartphoneOwners: s(4.3e9, "people", "GSMA Mobile Internet Connectivity 2023"),
  },
  availability: {
    low: a(0.1, "fraction of day", "estimate: idle AND charging AND unmetered (Bonawitz et al. 2019 eligibility), 0.1-0.3"),
    central: a(0.2, "fraction of day", "assumed: middle of the 0.1-0.3 estimate"),
    high: a(0.3, "fraction of day", "estimate: idle AND charging AND unmetered (Bonawitz et al. 2019 eligibility), 0.1-0.3"),
  },
  sustained: {
    low: s(0.5, "fraction of burst", "GPU stress-test reviews, on-device LLM studies 2025-2026: -22% to -50% after minutes"),
    central: a(0.65, "fraction of burst", "assumed: middle of the -22% to -50% sustained-load drop"),
    high: s(0.78, "fraction of burst", "GPU stress-test reviews, on-device LLM studies 2025-2026: -22% to -50% after minutes"),
  },
  redundancy: {
    central: a(1, "copies per shard", "assumed: trusted devices, each shard computed once"),
    untrusted: a(2, "copies per shard", "assumed: untrusted devices, each shard computed twice and compared"),
    high: a(3, "copies per shard", "assumed: majority vote over three copies"),
  },
  network: {
    downlinkMbps: s(36, "Mbit/s", "Ookla Speedtest Global Index (2020-2022), global median mobile download"),
    uplinkMbps: s(11, "Mbit/s", "Ookla Speedtest Global Index (2020-2022), global median mobile upload"),
    inputBytesPerSample: a(150_528, "bytes", "assumed: one 224x224x3 uint8 image, the ResNet-50 input, sent raw"),
    outputBytesPerSample: a(4_000, "bytes", "assumed: 1,000 float32 logits"),
  },
  runtime: {
    portableGapLow: s(10, "x slower", "onnxruntime issue #7859 and similar: ONNX Runtime CPU/NNAPI 10-50x slower than a tuned NPU path"),
    portableGapHigh: s(50, "x slower", "onnxruntime issue #7859 and similar: ONNX Runtime CPU/NNAPI 10-50x slower than a tuned NPU path"),
  },
  sensitivity: {
    tierRateSpread: a(0.5, "relative", "assumed: per-tier rates +-50% (chips within a tier differ that much)"),
    mixShift: a(0.1, "share", "assumed: flagship share +-10 points, taken from or given to low-end (premium is 25% of new sales, Counterpoint 2024)"),
    linkSpread: a(4, "x", "assumed: links 4x slower than the median at the low end"),
    fleetLowFraction: a(0.5, "fraction of devices", "assumed: half the claimed fleet at the low end; all smartphone owners at the high end"),
    h100MeasuredSpread: a(0.1, "relative", "assumed: +-10% between MLPerf submissions and rounds"),
  },
  coordinator: {
    shardSeconds: a(0.3, "s", "assumed: the planner's target shard duration (a few hundred ms), used when no shard was measured"),
  },
  context: {
    foldingAtHomeEflops: s(2.4, "EFLOPS", "Folding@home peak, April 2020, project announcements and press"),
    foldingAtHomeDevices: s(1e6, "devices", "Folding@home, April 2020: more than 1 million devices, mostly GPUs"),
    boincPflops: s(93, "PFLOPS", "Anderson, Journal of Grid Computing 18 (2020)"),
    boincDevices: s(7e5, "devices", "Anderson, Journal of Grid Computing 18 (2020)"),
    setiTflops: s(60, "TFLOPS", "Anderson and Fedak 2006"),
    setiHosts: s(3.3e5, "hosts", "Anderson and Fedak 2006"),
  },
};

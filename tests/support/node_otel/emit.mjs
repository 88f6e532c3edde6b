// The stock OpenTelemetry JS SDK, as an app would use it, configured by the environment only:
//   OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_COMPRESSION and
//   OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE (read by the exporters themselves),
//   OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env resource detector),
//   OTEL_EXPORTER_OTLP_PROTOCOL: http/json or http/protobuf (the default), which picks the exporter
//   packages the way the NodeSDK does.
// Emits three log records and two delta counters, flushes, exits. tests/core/test_otlp_node.py
// runs it and checks that what arrives decodes to exactly this.
import { diag, DiagConsoleLogger, DiagLogLevel, ValueType } from "@opentelemetry/api";
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  serviceInstanceIdDetector,
} from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN); // export failures on stderr

const protocol = process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
if (protocol !== "http/json" && protocol !== "http/protobuf") {
  console.error(`emit.mjs: OTEL_EXPORTER_OTLP_PROTOCOL must be http/json or http/protobuf, not ${protocol}`);
  process.exit(2);
}
const json = protocol === "http/json";
const { OTLPLogExporter } = await import(
  json ? "@opentelemetry/exporter-logs-otlp-http" : "@opentelemetry/exporter-logs-otlp-proto"
);
const { OTLPMetricExporter } = await import(
  json ? "@opentelemetry/exporter-metrics-otlp-http" : "@opentelemetry/exporter-metrics-otlp-proto"
);

// What the NodeSDK detects by default (OTEL_NODE_RESOURCE_DETECTORS unset: all of them).
const resource = defaultResource().merge(
  detectResources({
    detectors: [envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector],
  }),
);
await resource.waitForAsyncAttributes?.(); // host.id is read from the machine id asynchronously

const logs = new LoggerProvider({
  resource,
  processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter() })],
});
const logger = logs.getLogger("photoedit.ui", "1.2.3");
logger.emit({
  timestamp: [1795996800, 123456789], // HrTime: exact nanoseconds
  severityNumber: 9, // INFO
  severityText: "INFO",
  body: "feature_used",
  eventName: "photoedit.feature_used",
  attributes: {
    event: "export",
    duration_ms: 420,
    gpu: true,
    ratio: 0.5,
    zoom: 5.0, // a JS number with no fraction: sent as an intValue
    tags: ["a", "b"],
  },
});
logger.emit({ severityNumber: 13, body: { step: "crop", n: 2 }, attributes: { event: "crop" } });
logger.emit({ severityNumber: 17, body: "disk full", attributes: { event: "save", retries: -3 } });
await logs.shutdown(); // flushes

const metrics = new MeterProvider({
  resource,
  readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: 600_000 })],
});
const meter = metrics.getMeter("photoedit.metrics", "1.2.3");
const exports = meter.createCounter("photoedit.exports", { unit: "{export}", valueType: ValueType.INT });
exports.add(3, { format: "png" });
exports.add(2, { format: "jpeg" });
meter.createCounter("photoedit.saved_mb", { unit: "MBy" }).add(7); // the default value type: a double
await metrics.shutdown(); // the last collection, exported

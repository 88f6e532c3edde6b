"""Our hook for the ``opentelemetry`` namespace package, in place of pyinstaller-hooks-contrib's.

That one collects every ``opentelemetry_*`` entry point installed in the build environment,
for programs that run the OpenTelemetry SDK. Here the SDK and its exporters are only the stock
clients of the OTLP tests, and the OTLP receiver needs ``opentelemetry.proto`` alone (the spec
collects it, PROTOBUF_PACKAGES). So this hook adds nothing: no SDK, exporters, semantic
conventions, nor their entry-point metadata.
"""

hiddenimports: list[str] = []
datas: list[tuple[str, str]] = []

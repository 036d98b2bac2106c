{{/* Names and labels, as `helm create` lays them out. */}}
{{- define "gpumetrics.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpumetrics.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpumetrics.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpumetrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gpumetrics.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gpumetrics.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: exporter
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gpumetrics.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gpumetrics.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The config file: .Values.config with the keys the chart owns (listen address and port, the
InfiniBand sysfs root, the web config path) filled in, as TOML. Helm reads every number in
values as a float, and the exporter wants integers for a few keys (a TOML 0.0 is no GPU
index): those are converted back here.
*/}}
{{- define "gpumetrics.configToml" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $serve := get $config "serve" | default dict }}
{{- $_ := set $serve "address" "0.0.0.0" }}
{{- $_ := set $serve "port" (int .Values.port) }}
{{- $_ := set $config "serve" $serve }}
{{- $sources := get $config "sources" | default dict }}
{{- if .Values.infiniband.enabled }}
{{- $_ := set $sources "ib_root" "/host/sys/class/infiniband" }}
{{- else }}
{{- $_ := set $sources "infiniband" false }}
{{- end }}
{{- if hasKey $sources "fake_ib" }}
{{- $_ := set $sources "fake_ib" (int (get $sources "fake_ib")) }}
{{- end }}
{{- $_ := set $config "sources" $sources }}
{{- $engines := list }}
{{- range $engine := get $config "engines" | default list }}
{{- $engine = deepCopy $engine }}
{{- if hasKey $engine "gpus" }}
{{- $gpus := list }}
{{- range $gpu := get $engine "gpus" }}
{{- $gpus = append $gpus (kindIs "float64" $gpu | ternary (int64 $gpu | toString) (toString $gpu)) }}
{{- end }}
{{- $_ := set $engine "gpus" $gpus }}
{{- end }}
{{- if hasKey $engine "max_bytes" }}
{{- $_ := set $engine "max_bytes" (int64 (get $engine "max_bytes")) }}
{{- end }}
{{- $engines = append $engines $engine }}
{{- end }}
{{- $_ := set $config "engines" $engines }}
{{- if .Values.webConfig.secretName }}
{{- $_ := set $config "web" (dict "config" "/etc/gpumetrics/web/web.yml") }}
{{- end }}
{{- toToml $config }}
{{- end }}

{{/*
Fail the render when a pattern in config.metrics.include/exclude matches no metric of
files/metrics.txt (generated from the catalog), as `gpumetrics serve` would fail at start.
Globs: * and ? (and [...] classes) as in Python's fnmatch.
*/}}
{{- define "gpumetrics.checkMetrics" -}}
{{- $known := list }}
{{- range splitList "\n" (.Files.Get "files/metrics.txt") }}
{{- if and . (not (hasPrefix "#" .)) }}
{{- $known = append $known . }}
{{- end }}
{{- end }}
{{- if not $known }}
{{- fail "files/metrics.txt is missing or empty: run `gpumetrics render`" }}
{{- end }}
{{- $metrics := get (.Values.config | default dict) "metrics" | default dict }}
{{- range $key := list "include" "exclude" }}
{{- range $pattern := get $metrics $key | default list }}
{{- $re := printf "^%s$" ($pattern | replace "." "\\." | replace "*" ".*" | replace "?" ".") }}
{{- $found := false }}
{{- range $known }}
{{- if regexMatch $re . }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "config.metrics.%s: %q matches no gpumetrics metric (files/metrics.txt)" $key $pattern) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

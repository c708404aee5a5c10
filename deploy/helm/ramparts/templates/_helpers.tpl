{{/*
Ramparts helpers. Most helpers take a "ctx" dict: {root, values, chart}
  root   - the top-level context ($) of the chart that renders (this chart, or an app chart)
  values - this chart's values (.Values here, .Values.ramparts in an app chart)
  chart  - this chart's metadata (for appVersion)
so names, images and the policy come out the same whether this chart renders an object or an
app chart includes the sidecar. The public entry points for app charts are at the end.
*/}}

{{- define "ramparts.ctx" -}}
{{- /* ctx for this chart's own templates, as JSON (include returns strings) */ -}}
{{- dict "values" .Values "chart" (dict "AppVersion" .Chart.AppVersion "Version" .Chart.Version) | toJson -}}
{{- end -}}

{{- define "ramparts.name" -}}
{{- .values.nameOverride | default "ramparts" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ramparts.fullname" -}}
{{- $rel := .root.Release.Name -}}
{{- if .values.fullnameOverride -}}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "ramparts" $rel -}}
{{- $rel | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-ramparts" $rel | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ramparts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ramparts.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "ramparts.labels" -}}
{{ include "ramparts.selectorLabels" . }}
app.kubernetes.io/version: {{ .chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "ramparts-%s" .chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ramparts.gatewaySelectorLabels" -}}
{{ include "ramparts.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "ramparts.sidecarLabelKey" -}}ramparts.dev/sidecar{{- end -}}

{{- define "ramparts.image" -}}
{{- $img := .values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository ($img.tag | default .chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The policy as data (JSON): `policy` is a map, or the policy file's text (a string, e.g.
from `--set-file ramparts.policy=policy.yaml`). */}}
{{- define "ramparts.policyData" -}}
{{- $p := .values.policy | default dict -}}
{{- if kindIs "string" $p -}}
{{- $p = fromYaml $p -}}
{{- if hasKey $p "Error" -}}
{{- fail (printf "ramparts: policy is not valid YAML: %s" $p.Error) -}}
{{- end -}}
{{- end -}}
{{- toJson $p -}}
{{- end -}}

{{/* The effective policy file. A map is written with the Redis URL as `store:` of budget and
rate_limit stages that set none; a string (the file's own text) is kept byte for byte, so the
policy digest in audit records equals `sha256sum` of the file you wrote. Refuses a per-pod
embedded store unless redis.singleReplica says one pod serves these tenants (fail closed:
budgets must not silently multiply by the replica count). */}}
{{- define "ramparts.policy" -}}
{{- $v := .values -}}
{{- if not $v.policy -}}
{{- fail "ramparts: set `policy` (the policy file as YAML, see policies/example.yaml) or existingPolicyConfigMap" -}}
{{- end -}}
{{- $verbatim := kindIs "string" $v.policy -}}
{{- $policy := include "ramparts.policyData" . | fromJson -}}
{{- $pipeline := list -}}
{{- range $stage := ($policy.pipeline | default list) -}}
{{- if has (toString $stage.type) (list "budget" "rate_limit") -}}
{{- if and $v.redis.url (not (hasKey $stage "store")) -}}
{{- if $verbatim -}}
{{- fail (printf "ramparts: the policy file's %s stage has no store: write `store: %s` into it (a policy given as text is kept byte for byte)" $stage.type $v.redis.url) -}}
{{- end -}}
{{- $_ := set $stage "store" $v.redis.url -}}
{{- end -}}
{{- $store := toString ($stage.store | default "embedded") -}}
{{- if not (or (hasPrefix "redis://" $store) (hasPrefix "rediss://" $store) $v.redis.singleReplica) -}}
{{- if $v.redis.url -}}
{{- fail (printf "ramparts: redis.url is set but the policy's %s stage names the per-pod store %q: write `store: %s` into it (or drop its store line when the policy is a map)" $stage.type $store $v.redis.url) -}}
{{- end -}}
{{- fail (printf "ramparts: the %s stage uses the per-pod store %q; set redis.url so every pod shares budgets and limits, or redis.singleReplica=true if exactly one proxy pod serves these tenants" $stage.type $store) -}}
{{- end -}}
{{- /* redis.url is where the NetworkPolicy lets the proxy go: a store elsewhere would be blocked */ -}}
{{- if and $v.redis.url (or (hasPrefix "redis://" $store) (hasPrefix "rediss://" $store)) -}}
{{- if ne (urlParse $store).host (urlParse $v.redis.url).host -}}
{{- fail (printf "ramparts: the policy's %s stage uses Redis at %s but redis.url says %s; make them the same server" $stage.type (urlParse $store).host (urlParse $v.redis.url).host) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $pipeline = append $pipeline $stage -}}
{{- end -}}
{{- if $verbatim -}}
{{- $v.policy -}}
{{- else -}}
{{- $_ := set $policy "pipeline" $pipeline -}}
{{- toYaml $policy -}}
{{- end -}}
{{- end -}}

{{- define "ramparts.policyConfigMapName" -}}
{{- .values.existingPolicyConfigMap | default (printf "%s-policy" (include "ramparts.fullname" .)) -}}
{{- end -}}

{{- define "ramparts.envSecretName" -}}
{{- .values.secrets.existingEnvSecret | default (printf "%s-env" (include "ramparts.fullname" .)) -}}
{{- end -}}

{{- define "ramparts.fileSecretName" -}}
{{- .values.secrets.existingFileSecret | default (printf "%s-files" (include "ramparts.fullname" .)) -}}
{{- end -}}

{{- define "ramparts.hasEnvSecret" -}}
{{- if or .values.secrets.existingEnvSecret .values.secrets.env -}}true{{- end -}}
{{- end -}}

{{- define "ramparts.hasFileSecret" -}}
{{- if or .values.secrets.existingFileSecret .values.secrets.files -}}true{{- end -}}
{{- end -}}

{{/* Drain budget from the policy, rounded up to whole seconds. */}}
{{- define "ramparts.drainSeconds" -}}
{{- $server := (include "ramparts.policyData" . | fromJson).server | default dict -}}
{{- $drain := 25.0 -}}
{{- if hasKey $server "drain_timeout_s" -}}{{- $drain = $server.drain_timeout_s -}}{{- end -}}
{{- ceil $drain | int -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: preStop sleep + drain + margin (audit flush, settlement). */}}
{{- define "ramparts.terminationGracePeriodSeconds" -}}
{{- add (int .values.lifecycle.preStopSleepSeconds) (include "ramparts.drainSeconds" . | int) (int .values.lifecycle.shutdownMarginSeconds) -}}
{{- end -}}

{{- define "ramparts.podAnnotations" -}}
{{- include "ramparts.podAnnotationLines" . | trim -}}
{{- end -}}

{{- define "ramparts.podAnnotationLines" -}}
{{- if .values.existingPolicyConfigMap }}
checksum/ramparts-policy: {{ .values.policyChecksum | default .values.existingPolicyConfigMap | quote }}
{{- else }}
checksum/ramparts-policy: {{ include "ramparts.policy" . | sha256sum }}
{{- end }}
{{- if or .values.secrets.env .values.secrets.files }}
checksum/ramparts-secrets: {{ dict "env" .values.secrets.env "files" .values.secrets.files | toJson | sha256sum }}
{{- end }}
{{- end -}}

{{/* The container. .mode is "sidecar" (native sidecar: an init container with
restartPolicy Always, proxy on 127.0.0.1) or "gateway" (proxy on all interfaces). */}}
{{- define "ramparts.container" -}}
{{- $v := .values -}}
{{- $sidecar := eq .mode "sidecar" -}}
name: ramparts
image: {{ include "ramparts.image" . | quote }}
imagePullPolicy: {{ $v.image.pullPolicy }}
{{- if $sidecar }}
restartPolicy: Always
{{- end }}
args:
  - --policy
  - /etc/ramparts/policy/policy.yaml
  - --data-dir
  - /var/lib/ramparts
  - --listen
  - {{ printf "%s:%d" (ternary "127.0.0.1" "0.0.0.0" $sidecar) (int $v.ports.proxy) | quote }}
  - --ops-listen
  - {{ printf "0.0.0.0:%d" (int $v.ports.ops) | quote }}
  - --log-level
  - {{ $v.logLevel | quote }}
ports:
{{- if not $sidecar }}
  - name: proxy
    containerPort: {{ $v.ports.proxy }}
    protocol: TCP
{{- end }}
  - name: {{ ternary "ramparts-ops" "ops" $sidecar }}
    containerPort: {{ $v.ports.ops }}
    protocol: TCP
{{- if include "ramparts.hasEnvSecret" . }}
envFrom:
  - secretRef:
      name: {{ include "ramparts.envSecretName" . }}
{{- end }}
{{- with $v.extraEnv }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: ramparts-policy
    mountPath: /etc/ramparts/policy
    readOnly: true
  - name: ramparts-data
    mountPath: /var/lib/ramparts
  - name: ramparts-tmp
    mountPath: /tmp
{{- if include "ramparts.hasFileSecret" . }}
  - name: ramparts-secrets
    mountPath: /var/run/secrets/ramparts
    readOnly: true
{{- end }}
startupProbe:
  httpGet: {path: /readyz, port: {{ $v.ports.ops }}}
  {{- toYaml $v.probes.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ $v.ports.ops }}}
  {{- toYaml $v.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: {{ $v.ports.ops }}}
  {{- toYaml $v.probes.readiness | nindent 2 }}
{{- if not $sidecar }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ $v.lifecycle.preStopSleepSeconds | int | toString | quote }}]
{{- end }}
resources:
  {{- toYaml $v.resources | nindent 2 }}
securityContext:
  {{- toYaml $v.securityContext | nindent 2 }}
terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}

{{- define "ramparts.volumes" -}}
- name: ramparts-policy
  configMap:
    name: {{ include "ramparts.policyConfigMapName" . }}
    items:
      - {key: policy.yaml, path: policy.yaml}
- name: ramparts-data
  {{- toYaml (.values.dataVolume | default (dict "emptyDir" (dict "sizeLimit" "1Gi"))) | nindent 2 }}
- name: ramparts-tmp
  {{- toYaml (.values.tmpVolume | default (dict "emptyDir" (dict "medium" "Memory" "sizeLimit" "64Mi"))) | nindent 2 }}
{{- if include "ramparts.hasFileSecret" . }}
- name: ramparts-secrets
  secret:
    secretName: {{ include "ramparts.fileSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* ===================== public entry points for app charts =====================
An app chart lists this chart as a dependency named "ramparts" and, in its pod template:

  metadata:
    labels:      {{- include "ramparts.sidecar.podLabels" . | nindent 8 }}
    annotations: {{- include "ramparts.sidecar.podAnnotations" . | nindent 8 }}
  spec:
    initContainers: {{- include "ramparts.sidecar.initContainer" . | nindent 8 }}
    volumes:        {{- include "ramparts.sidecar.volumes" . | nindent 8 }}

Each takes the app chart's root context. */}}

{{- define "ramparts.sidecar.appCtx" -}}
{{- $sub := index (.Subcharts | default dict) "ramparts" -}}
{{- $chart := dict "AppVersion" "" "Version" "" -}}
{{- if $sub -}}{{- $chart = dict "AppVersion" $sub.Chart.AppVersion "Version" $sub.Chart.Version -}}{{- end -}}
{{- if not .Values.ramparts -}}
{{- fail "ramparts.sidecar.*: the app chart needs this chart as a dependency named \"ramparts\" (values under .Values.ramparts)" -}}
{{- end -}}
{{- dict "values" .Values.ramparts "chart" $chart | toJson -}}
{{- end -}}

{{- define "ramparts.sidecar.initContainer" -}}
{{- $ctx := include "ramparts.sidecar.appCtx" . | fromJson -}}
{{- $_ := set $ctx "root" . -}}
{{- $_ := set $ctx "mode" "sidecar" -}}
- {{- include "ramparts.container" $ctx | nindent 2 }}
{{- end -}}

{{- define "ramparts.sidecar.volumes" -}}
{{- $ctx := include "ramparts.sidecar.appCtx" . | fromJson -}}
{{- $_ := set $ctx "root" . -}}
{{- include "ramparts.volumes" $ctx }}
{{- end -}}

{{- define "ramparts.sidecar.podLabels" -}}
{{- $ctx := include "ramparts.sidecar.appCtx" . | fromJson -}}
{{- $_ := set $ctx "root" . -}}
{{ include "ramparts.sidecarLabelKey" . }}: {{ include "ramparts.fullname" $ctx }}
{{- with $ctx.values.sidecar.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ramparts.sidecar.podAnnotations" -}}
{{- $ctx := include "ramparts.sidecar.appCtx" . | fromJson -}}
{{- $_ := set $ctx "root" . -}}
{{- include "ramparts.podAnnotations" $ctx }}
{{- end -}}

{{/* Seconds the proxy needs after SIGTERM (drain + margin); add the app's own shutdown time
to it for the pod's terminationGracePeriodSeconds. */}}
{{- define "ramparts.sidecar.shutdownSeconds" -}}
{{- $ctx := include "ramparts.sidecar.appCtx" . | fromJson -}}
{{- add (include "ramparts.drainSeconds" $ctx | int) (int $ctx.values.lifecycle.shutdownMarginSeconds) -}}
{{- end -}}

{{- define "ramparts.serviceAccountName" -}}
{{- $sa := .values.gateway.serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "ramparts.fullname" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Names: every object is "<release>-<component>", trimmed to the 63-character DNS limit. */}}
{{- define "rp.name" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rp.userNamespace" -}}
{{- .Values.singleuser.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* Labels that select one component's pods (also used by NetworkPolicies and PDBs). */}}
{{- define "rp.selector" -}}
app.kubernetes.io/name: roman-platform
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rp.labels" -}}
{{ include "rp.selector" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* A pinned image reference; the schema already refuses "latest" and empty tags. */}}
{{- define "rp.image" -}}
image: {{ printf "%s:%s" .name .tag | quote }}
imagePullPolicy: {{ .pullPolicy | default "IfNotPresent" }}
{{- end -}}

{{/* Container hardening: non-root, no privilege escalation, no capabilities, RuntimeDefault
seccomp, read-only root filesystem unless the caller says the program needs to write. */}}
{{- define "rp.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .uid }}
  runAsGroup: {{ .gid | default .uid }}
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: {{ not .writableRoot }}
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "rp.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  seccompProfile:
    type: RuntimeDefault
{{- with .fsGroup }}
  fsGroup: {{ . }}
{{- end }}
{{- end -}}

{{/* A NetworkPolicy peer: the pods of one component of this release, in a given namespace. */}}
{{- define "rp.peer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/name: roman-platform
      app.kubernetes.io/instance: {{ .root.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace | default .root.Release.Namespace }}
{{- end -}}

{{/* DNS egress, which every pod needs. */}}
{{- define "rp.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}

{{/* Egress to the Kubernetes API server (its address is not knowable at render time). */}}
{{- define "rp.kubeApiEgress" -}}
- ports:
    - {port: 443, protocol: TCP}
    - {port: 6443, protocol: TCP}
{{- end -}}

{{/* The effective tier policy: the bundled policy with the values' overrides merged in and the
default image pinned to the singleuser image. */}}
{{- define "rp.policy" -}}
{{- $base := .Files.Get "files/policy.yaml" | fromYaml -}}
{{- $merged := mergeOverwrite $base (deepCopy .Values.policy) -}}
{{- $_ := set $merged.images "default" (printf "%s:%s" .Values.singleuser.image.name .Values.singleuser.image.tag) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Secret values that must survive upgrades: reuse what the cluster has, else generate. */}}
{{- define "rp.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "rp.name" (dict "root" .root "name" "hub")) -}}
{{- if and $existing (index $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else if .hex -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}

{{/* Where the data and calibration references are, for notebooks and Dask pods alike
(the environment contract in the architecture notes). */}}
{{- define "rp.dataEnv" -}}
ROMAN_DATA_URL: {{ ternary .Values.data.volume.mountPath .Values.data.url .Values.data.volume.enabled | quote }}
{{- with .Values.data.s3.endpoint }}
ROMAN_DATA_S3_ENDPOINT: {{ . | quote }}
{{- end }}
CRDS_PATH: {{ .Values.data.crds.path | quote }}
{{- with .Values.data.crds.serverUrl }}
CRDS_SERVER_URL: {{ . | quote }}
{{- end }}
STPSF_PATH: {{ .Values.data.stpsfPath | quote }}
{{- end -}}

{{/* Egress to the data endpoints (user servers and Dask pods). */}}
{{- define "rp.dataEgress" -}}
{{- if .Values.data.egressCIDRs }}
- to:
    {{- range .Values.data.egressCIDRs }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    {{- range .Values.data.egressPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}
{{- end -}}

{{/* Where users open the hub: hub.publicUrl, else the first ingress host over https. */}}
{{- define "rp.publicUrl" -}}
{{- if .Values.hub.publicUrl -}}
{{- .Values.hub.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- printf "https://%s" (first .Values.ingress.hosts) -}}
{{- end -}}
{{- end -}}

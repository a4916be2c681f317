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

{{/* An image's full reference: global.registry (a registry, or a registry/prefix that mirrors
every image the chart runs) in front of the image's repository without its own registry host.
Used for every pod the chart, KubeSpawner and the gateway create. Call with (dict "root" $ "image" X). */}}
{{- define "rp.imageRef" -}}
{{- $name := .image.name -}}
{{- with .root.Values.global.registry -}}
{{- $parts := splitList "/" $name -}}
{{- if and (gt (len $parts) 1) (or (contains "." (first $parts)) (contains ":" (first $parts)) (eq (first $parts) "localhost")) -}}
{{- $name = join "/" (rest $parts) -}}
{{- end -}}
{{- $name = printf "%s/%s" (trimSuffix "/" .) $name -}}
{{- end -}}
{{- printf "%s:%s" $name .image.tag -}}
{{- end -}}

{{/* The same for an image given as one "repository:tag" string (the policy's environments). */}}
{{- define "rp.imageStringRef" -}}
{{- $name := .image -}}
{{- with .root.Values.global.registry -}}
{{- $parts := splitList "/" $name -}}
{{- if and (gt (len $parts) 1) (or (contains "." (first $parts)) (contains ":" (first $parts)) (eq (first $parts) "localhost")) -}}
{{- $name = join "/" (rest $parts) -}}
{{- end -}}
{{- $name = printf "%s/%s" (trimSuffix "/" .) $name -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* A pinned image reference (the schema refuses "latest" and empty tags). Components that run
the hub image (culler, quota, gateway, dev OIDC provider) leave their image unset and get
hub.image. Call with (dict "root" $ "image" X). */}}
{{- define "rp.image" -}}
{{- $img := .image | default .root.Values.hub.image -}}
image: {{ include "rp.imageRef" (dict "root" .root "image" $img) | quote }}
imagePullPolicy: {{ $img.pullPolicy | default "IfNotPresent" }}
{{- end -}}

{{/* The pull secrets of every pod the release runs (its own, KubeSpawner's, the gateway's,
the team Jobs'): global.imagePullSecrets plus the one the chart creates from
global.imagePullSecret (made in both namespaces, so it exists where user pods run). */}}
{{- define "rp.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.global.imagePullSecrets -}}
{{- if kindIs "string" . -}}
{{- $names = append $names . -}}
{{- else -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}
{{- if .Values.global.imagePullSecret.create -}}
{{- $names = append $names (include "rp.name" (dict "root" . "name" "image-pull")) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{- define "rp.pullSecrets" -}}
{{- $names := include "rp.pullSecretNames" . | fromJsonArray -}}
{{- if $names }}
imagePullSecrets:
{{- range $names }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A Service's in-cluster address from any namespace (user pods may run in another one). */}}
{{- define "rp.svcHost" -}}
{{- printf "%s.%s.svc" (include "rp.name" (dict "root" .root "name" .name)) .root.Release.Namespace -}}
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

{{/* The effective tier policy: the bundled policy with the values' overrides merged in (a list
such as environments is replaced whole), the default image pinned to the singleuser image, and
the environments' images resolved: the default environment runs the singleuser image, the others
their own image behind global.registry, so server and Dask pods of every environment pull from
the same mirror. */}}
{{- define "rp.policy" -}}
{{- $base := .Files.Get "files/policy.yaml" | fromYaml -}}
{{- $merged := mergeOverwrite $base (deepCopy .Values.policy) -}}
{{- $default := include "rp.imageRef" (dict "root" . "image" .Values.singleuser.image) -}}
{{- $_ := set $merged.images "default" $default -}}
{{- $envs := list -}}
{{- range $env := $merged.environments | default list -}}
{{- $env = deepCopy $env -}}
{{- if $env.default -}}
{{- $_ := set $env "image" $default -}}
{{- else -}}
{{- $_ := set $env "image" (include "rp.imageStringRef" (dict "root" $ "image" $env.image)) -}}
{{- end -}}
{{- $envs = append $envs $env -}}
{{- end -}}
{{- if $envs -}}
{{- $_ := set $merged "environments" $envs -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Secret values that must survive upgrades: pinned in hub.secrets (GitOps: helm template,
Argo CD and Flux cannot lookup, so an unpinned key would rotate on every render), else reuse what
the cluster has (helm install/upgrade), else generate. */}}
{{- define "rp.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "rp.name" (dict "root" .root "name" "hub")) -}}
{{- $pinned := index (.root.Values.hub.secrets | default dict) .key | default "" -}}
{{- if $pinned -}}
{{- $pinned -}}
{{- else if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else if .hex -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}

{{/* The same for the TAP service's own Secret (<release>-tap; pinned in data.tap.secrets). */}}
{{- define "rp.tapSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "rp.name" (dict "root" .root "name" "tap")) -}}
{{- $pinned := index (.root.Values.data.tap.secrets | default dict) .key | default "" -}}
{{- if $pinned -}}
{{- $pinned -}}
{{- else if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{/* Where the TAP service's PostgreSQL is (postgresql://user@host:port/dbname, no password) and
which Secret key holds the password: the in-chart server's or the external one's. */}}
{{- define "rp.tapDatabaseUrl" -}}
{{- if eq .Values.data.tap.postgresql.type "external" -}}
{{- .Values.data.tap.postgresql.external.url -}}
{{- else -}}
{{- printf "postgresql://postgres@%s:5432/gavo" (include "rp.name" (dict "root" . "name" "tap-postgresql")) -}}
{{- end -}}
{{- end -}}

{{- define "rp.tapDatabasePassword" -}}
{{- if eq .Values.data.tap.postgresql.type "external" -}}
secretKeyRef: {name: {{ .Values.data.tap.postgresql.external.existingSecret }}, key: {{ .Values.data.tap.postgresql.external.passwordKey }}}
{{- else -}}
secretKeyRef: {name: {{ include "rp.name" (dict "root" . "name" "tap") }}, key: postgres-password}
{{- end -}}
{{- end -}}

{{/* Where the data and calibration references are, for notebooks and Dask pods alike
(the environment contract in the architecture notes). */}}
{{- define "rp.dataEnv" -}}
ROMAN_DATA_URL: {{ ternary .Values.data.volume.mountPath .Values.data.url .Values.data.volume.enabled | quote }}
{{- with .Values.data.s3.endpoint }}
ROMAN_DATA_S3_ENDPOINT: {{ . | quote }}
{{- end }}
{{- if .Values.references.enabled }}
CRDS_PATH: {{ printf "%s/crds" .Values.references.mountPath | quote }}
CRDS_READONLY_CACHE: "1"
CRDS_SERVER_URL: {{ .Values.references.crds.serverUrl | quote }}
STPSF_PATH: {{ printf "%s/stpsf-data" .Values.references.mountPath | quote }}
{{- else }}
CRDS_PATH: {{ .Values.data.crds.path | quote }}
{{- with .Values.data.crds.serverUrl }}
CRDS_SERVER_URL: {{ . | quote }}
{{- end }}
STPSF_PATH: {{ .Values.data.stpsfPath | quote }}
{{- end }}
{{- /* The writable places, as the hub gives them to servers (hub_config/chart_values.py):
{username} is expanded per owner by the gateway (hub_config.gateway.user_environment). */}}
{{- with .Values.data.userStore.userPrefix }}
ROMAN_USER_STORE_URL: {{ printf "%s{username}/" . | quote }}
{{- end }}
{{- with .Values.data.userStore.teamPrefix }}
ROMAN_TEAM_STORE_URL: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Egress to the internet but not into the cluster, z2jh's egressAllowRules.nonPrivateIPs:
every address except the cluster-internal ranges (networkPolicy.internalCIDRs: pods, services,
nodes, a VPC) and, unless allowed, the cloud metadata server (instance credentials!).
Call with (dict "root" $ "rules" <egressAllowRules> "ports" <list or nil>). */}}
{{- define "rp.publicEgress" -}}
{{- if .rules.nonPrivateIPs }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          {{- range .root.Values.networkPolicy.internalCIDRs }}
          - {{ . | quote }}
          {{- end }}
          {{- if not .rules.cloudMetadataServer }}
          - 169.254.169.254/32
          {{- end }}
  {{- with .ports }}
  ports:
    {{- range . }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- end }}
{{- end }}
{{- if .rules.cloudMetadataServer }}
- to: [{ipBlock: {cidr: 169.254.169.254/32}}]
{{- end }}
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

{{/* The claim of the data volume (data.volume.claimName, else the sample volume's). */}}
{{- define "rp.dataClaim" -}}
{{- .Values.data.volume.claimName | default (include "rp.name" (dict "root" . "name" "sample-data")) -}}
{{- end -}}

{{/* The claim of the reference volume (references.claimName, else the chart's own). */}}
{{- define "rp.referencesClaim" -}}
{{- .Values.references.claimName | default (include "rp.name" (dict "root" . "name" "references")) -}}
{{- end -}}

{{/* Where users open the hub: hub.publicUrl, else the first ingress host over https. */}}
{{- define "rp.publicUrl" -}}
{{- if .Values.hub.publicUrl -}}
{{- .Values.hub.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- printf "https://%s" (first .Values.ingress.hosts) -}}
{{- end -}}
{{- end -}}

{{/* Object names: runtime-insights unless nameOverride says otherwise. */}}
{{- define "ri.name" -}}
{{- default "runtime-insights" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Service's DNS name: what the serving certificate is valid for. */}}
{{- define "ri.serviceDNS" -}}
{{ include "ri.name" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* The labels manifests/ puts on every object, plus Helm's. */}}
{{- define "ri.labels" -}}
app.kubernetes.io/part-of: runtime-insights
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What selects the DaemonSet's pods (never changes across upgrades). */}}
{{- define "ri.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ri.name" . }}
{{- end -}}

{{- define "ri.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* Secret holding the exporter's serving certificate. */}}
{{- define "ri.tlsSecret" -}}
{{- if eq .Values.tls.source "secret" -}}
{{ required "tls.existingSecret is required with tls.source=secret" .Values.tls.existingSecret }}
{{- else -}}
{{ include "ri.name" . }}-tls
{{- end -}}
{{- end -}}

{{/* Secret holding the OpenMeter token, if any. */}}
{{- define "ri.openmeterSecret" -}}
{{- if .Values.openmeter.existingSecret -}}
{{ .Values.openmeter.existingSecret }}
{{- else -}}
{{ include "ri.name" . }}-openmeter
{{- end -}}
{{- end -}}

{{/* The chart's own CA and serving certificate (tls.source=helm), made once and kept:
     an upgrade reuses the Secret already in the cluster. */}}
{{- define "ri.helmTLS" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "ri.tlsSecret" .) -}}
{{- if and $secret (index ($secret.data | default dict) "ca.crt") -}}
{{- dict "ca" (index $secret.data "ca.crt" | b64dec) "crt" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec) | toJson -}}
{{- else -}}
{{- $dns := include "ri.serviceDNS" . -}}
{{- $ca := genCA (printf "%s-ca" (include "ri.name" .)) (int .Values.tls.validityDays) -}}
{{- $cert := genSignedCert $dns nil (list $dns (printf "%s.cluster.local" $dns)) (int .Values.tls.validityDays) $ca -}}
{{- dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key | toJson -}}
{{- end -}}
{{- end -}}

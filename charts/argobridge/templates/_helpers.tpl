{{/* Name of the chart, overridable. */}}
{{- define "argobridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "argobridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "argobridge.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "argobridge.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "argobridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argobridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "argobridge.labels" -}}
{{ include "argobridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: argobridge
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "argobridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "argobridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "argobridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
What the operator calls in each namespace it serves, and nothing more (tests run the operator under
exactly these rules and check that a call outside them is refused).
*/}}
{{- define "argobridge.namespacedRules" -}}
# BackstageBridges: kopf watches them, adds its finalizer and annotations, and the operator writes status.
- apiGroups: [argobridge.io]
  resources: [backstagebridges]
  verbs: [get, list, watch, patch]
- apiGroups: [argobridge.io]
  resources: [backstagebridges/status]
  verbs: [get, patch]
# ConfigMaps and Secrets by name only. list/watch too: the operator's watches carry the field selector
# metadata.name=<name>, which the apiserver authorises against resourceNames; any other Secret is refused.
# argocd-notifications-cm (owned keys, server-side apply) and argocd-cm (read for the Argo CD URL); Argo
# CD's install creates both, ArgoBridge never does (no create).
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [argocd-notifications-cm, argocd-cm]
  verbs: [get, list, watch, patch]
# argocd-notifications-secret (the token's key, never created) and ArgoBridge's copy of the token for the
# OpenShift GitOps flavor{{ with .Values.rbac.caBundleSecrets }}, and the CA bundles of spec.backstage.caBundle{{ end }}.
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [argocd-notifications-secret, argocd-notifications-secret-argobridge{{ range .Values.rbac.caBundleSecrets }}, {{ . }}{{ end }}]
  verbs: [get, list, watch, patch]
# Creating a Secret: only ArgoBridge's copy (a server-side apply that creates is authorised by name).
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [argocd-notifications-secret-argobridge]
  verbs: [create]
# Events on bridges and Applications that explain a problem and its fix.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Applications: read to check entity refs and subscriptions; patched only in Annotations mode.
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, list, watch{{ if .Values.rbac.applicationAnnotations }}, patch{{ end }}]
# OpenShift GitOps flavor: the ArgoCD resource and the server's Route are read, never written; ArgoBridge's
# entries go into the NotificationsConfiguration by server-side apply (never created: the Argo CD operator does).
- apiGroups: [argoproj.io]
  resources: [argocds]
  verbs: [get, list]
- apiGroups: [argoproj.io]
  resources: [notificationsconfigurations]
  verbs: [get, list, watch, patch]
- apiGroups: [route.openshift.io]
  resources: [routes]
  verbs: [get]
{{- end }}

{{/*
The delivery relay's objects. Its pods carry their own app.kubernetes.io/name, so the operator's
Deployment, metrics Service and ServiceMonitor (which select name and instance) never match them.
The full name is cut to 40 characters: "-relay-headless" and a StatefulSet's revision-hash label
must still fit in 63.
*/}}
{{- define "argobridge.relay.fullname" -}}
{{- printf "%s-relay" (include "argobridge.fullname" . | trunc 40 | trimSuffix "-") }}
{{- end }}

{{- define "argobridge.relay.headlessName" -}}
{{- printf "%s-headless" (include "argobridge.relay.fullname" .) }}
{{- end }}

{{- define "argobridge.relay.configSecretName" -}}
{{- printf "%s-config" (include "argobridge.relay.fullname" .) }}
{{- end }}

{{- define "argobridge.relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argobridge.name" . }}-relay
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "argobridge.relay.labels" -}}
{{ include "argobridge.relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: relay
app.kubernetes.io/part-of: argobridge
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "argobridge.relay.serviceAccountName" -}}
{{- if .Values.relay.serviceAccount.create }}
{{- default (include "argobridge.relay.fullname" .) .Values.relay.serviceAccount.name }}
{{- else }}
{{- required "relay.serviceAccount.name is required when relay.serviceAccount.create is false" .Values.relay.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's three relay settings (see RELAY_CONTRACT.md); absent without the relay, so bridges stay Direct. */}}
{{- define "argobridge.relay.operatorEnv" -}}
{{- $relay := include "argobridge.relay.fullname" . }}
{{- $headless := include "argobridge.relay.headlessName" . }}
{{- $ns := .Release.Namespace }}
{{- $statusPort := .Values.relay.ports.status }}
{{- $urls := list }}
{{- range $i := until (int .Values.relay.replicas) }}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s.svc:%d" $relay $i $headless $ns (int $statusPort)) }}
{{- end }}
- name: ARGOBRIDGE_RELAY_URL
  value: {{ printf "http://%s.%s.svc:%d" $relay $ns (int .Values.relay.ports.ingress) | quote }}
- name: ARGOBRIDGE_RELAY_CONFIG_SECRET
  value: {{ printf "%s/%s" $ns (include "argobridge.relay.configSecretName" .) | quote }}
- name: ARGOBRIDGE_RELAY_STATUS_URLS
  value: {{ join "," $urls | quote }}
{{- end }}

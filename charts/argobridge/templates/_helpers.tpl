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

{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "modelrollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelrollout.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are qualified by the release namespace: two releases of the same name in two
namespaces (one operator per team, each watching its own namespaces) must not collide. */}}
{{- define "modelrollout.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "modelrollout.fullname" .) -}}
{{- end -}}

{{- define "modelrollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelrollout.labels" -}}
helm.sh/chart: {{ include "modelrollout.chart" . }}
{{ include "modelrollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: modelrollout
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "modelrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelrollout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelrollout.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs in every namespace it watches (see docs/operations.md, "RBAC"). */}}
{{- define "modelrollout.namespacedRules" -}}
# ModelRollouts: kopf lists and watches them; the tick reads one; kopf patches metadata (its finalizer and
# progress annotations).
- apiGroups: ["modelrollout.io"]
  resources: ["modelrollouts"]
  verbs: ["get", "list", "watch", "patch"]
# The status subresource: the tick's status write and kopf's own status patches.
- apiGroups: ["modelrollout.io"]
  resources: ["modelrollouts/status"]
  verbs: ["patch"]
# Generated objects carry an ownerReference with blockOwnerDeletion, which clusters running the
# OwnerReferencesPermissionEnforcement admission plugin allow only with update on the owner's finalizers.
- apiGroups: ["modelrollout.io"]
  resources: ["modelrollouts/finalizers"]
  verbs: ["update"]
# Per-version Deployments: listed and watched by label (the operator reads them from a watch), read by name to
# check their owner before applying (never take over a same-named object), server-side applied (patch; create
# on first apply), deleted.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
# Per-version Services: read by name to check their owner before applying, server-side applied and deleted.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch", "delete"]
# The VirtualService: read, created when missing, merge-patched (guarded by resourceVersion), and the one
# the operator created deleted when its rollout is (after every slice is back on stable).
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "create", "patch", "delete"]
# The HTTPRoute (Gateway API provider), the same way.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "create", "patch", "delete"]
# Events on ModelRollouts (the operator's and kopf's).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* What kopf reads cluster-wide, whatever the mode. */}}
{{- define "modelrollout.discoveryRules" -}}
# kopf watches CustomResourceDefinitions to notice the ModelRollout CRD being (re)installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# With a namespace list kopf lists and watches namespaces to start and stop its per-namespace watches.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}

{{/* Labels of every object: the release is the app's name (several releases, one namespace). */}}
{{- define "strata.labels" -}}
app.kubernetes.io/name: {{ .Release.Name }}
{{- end }}

{{- define "strata.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* Workers a model group has: TP x PP. */}}
{{- define "strata.ranks" -}}
{{ mul .Values.parallelism.tp .Values.parallelism.pp }}
{{- end }}

{{- define "strata.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "strata.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{- define "strata.modelsVolume" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ .Release.Name }}-models
    readOnly: true
{{- end }}

{{/* The coordinator's pod: a Deployment's template, or a LeaderWorkerSet's leader. */}}
{{- define "strata.coordinatorPod" -}}
metadata:
  labels:
    {{- include "strata.labels" . | nindent 4 }}
    app.kubernetes.io/component: coordinator
spec:
  # preStop (5 s, while the endpoints drop the pod) + the drain timeout + 10 s.
  terminationGracePeriodSeconds: {{ add 15 .Values.drainTimeoutSeconds }}
  {{- include "strata.podSecurity" . | nindent 2 }}
  containers:
    - name: coordinator
      image: {{ include "strata.image" . }}
      args: ["coordinator"]
      envFrom:
        - configMapRef:
            name: {{ .Release.Name }}-config
      ports:
        - name: http
          containerPort: 8000
        - name: cluster
          containerPort: 50051
      startupProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 10
        failureThreshold: {{ div .Values.startupProbeSeconds 10 }}
      livenessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /ready
          port: http
        periodSeconds: 5
        timeoutSeconds: 30
        failureThreshold: 2
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "5"]
      resources:
        {{- toYaml .Values.resources.coordinator | nindent 8 }}
      {{- include "strata.containerSecurity" . | nindent 6 }}
      volumeMounts:
        - name: models
          mountPath: /models
          readOnly: true
        - name: api-keys
          mountPath: /etc/strata/api-keys
          readOnly: true
        - name: home
          mountPath: /home/strata
        - name: tmp
          mountPath: /tmp
  volumes:
    {{- include "strata.modelsVolume" . | nindent 4 }}
    - name: api-keys
      secret:
        secretName: {{ .Values.apiKeys.secretName }}
    - name: home
      emptyDir: {}
    - name: tmp
      emptyDir: {}
{{- end }}

{{/* A worker's pod: a StatefulSet's template, or a LeaderWorkerSet's worker. */}}
{{- define "strata.workerPod" -}}
{{- $gpu := eq .Values.device "cuda" -}}
metadata:
  labels:
    {{- include "strata.labels" . | nindent 4 }}
    app.kubernetes.io/component: worker
spec:
  terminationGracePeriodSeconds: 30
  {{- include "strata.podSecurity" . | nindent 2 }}
  {{- with .Values.gpu.tolerations }}
  {{- if $gpu }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  containers:
    - name: worker
      image: {{ include "strata.image" . }}
      {{- if .Values.multiNode }}
      # LWS_LEADER_ADDRESS: the leader pod's address, set by the LeaderWorkerSet.
      args: ["worker", "--coordinator=$(LWS_LEADER_ADDRESS):50051"]
      {{- else }}
      args: ["worker"]
      {{- end }}
      envFrom:
        - configMapRef:
            name: {{ .Release.Name }}-config
      env:
        - name: STRATA_ADVERTISE_HOST
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: STRATA_NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
      ports:
        - name: worker
          containerPort: 50052
      livenessProbe:
        tcpSocket:
          port: worker
        periodSeconds: 10
        failureThreshold: 3
      resources:
        {{- $resources := deepCopy .Values.resources.worker }}
        {{- if $gpu }}
        {{- $_ := set $resources.requests .Values.gpu.resource "1" }}
        {{- $_ := set (default dict $resources.limits) .Values.gpu.resource "1" }}
        {{- end }}
        {{- toYaml $resources | nindent 8 }}
      {{- include "strata.containerSecurity" . | nindent 6 }}
      volumeMounts:
        - name: models
          mountPath: /models
          readOnly: true
        - name: home
          mountPath: /home/strata
        - name: tmp
          mountPath: /tmp
        {{- if .Values.shmSize }}
        - name: shm  # NCCL's shared-memory transport between the GPUs of a node
          mountPath: /dev/shm
        {{- end }}
  volumes:
    {{- include "strata.modelsVolume" . | nindent 4 }}
    - name: home
      emptyDir: {}
    - name: tmp
      emptyDir: {}
    {{- if .Values.shmSize }}
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ .Values.shmSize }}
    {{- end }}
{{- end }}

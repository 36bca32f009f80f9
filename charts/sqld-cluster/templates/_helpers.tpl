{{- define "sqld-cluster.name" -}}
{{- $name := default .Release.Name .Values.name }}
{{- if gt (len $name) 44 }}
{{- fail (printf "the cluster name %q is longer than 44 characters" $name) }}
{{- end }}
{{- $name }}
{{- end }}

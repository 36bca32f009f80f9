{{- define "sqld-cluster.name" -}}
{{- $name := default .Release.Name .Values.name }}
{{- if gt (len $name) 44 }}
{{- fail (printf "the cluster name %q is longer than 44 characters" $name) }}
{{- end }}
{{- /* Its Services are named after it: a DNS-1035 label (no dots, no leading digit). */}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "the cluster name %q must be a DNS-1035 label: a-z, 0-9 and '-', starting with a letter (set name: when the release name is not one)" $name) }}
{{- end }}
{{- $name }}
{{- end }}

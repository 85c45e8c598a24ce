// Command verdicts runs other projects' own code on Kubernetes objects, so the tests check what those
// projects really conclude about a ModelRollout, not what an imitation of them would:
//
//	verdicts kstatus                          kstatus (sigs.k8s.io/cli-utils) status.Compute
//	verdicts argocd-health  --argocd-cm FILE  Argo CD's resource health, as its application controller computes it
//	verdicts argocd-actions --argocd-cm FILE  Argo CD's resource action discovery
//	verdicts argocd-run     --argocd-cm FILE --action NAME
//	                                          Argo CD's resource action runner and the merge patch its API server sends
//	verdicts wait --kubeconfig FILE --namespace NS --group G --kind K --name NAME [--timeout D] [--fail-fast]
//	                                          a kstatus wait on one live object, the way Flux waits for a Kustomization
//
// The first four read a JSON array of objects on stdin and write a JSON array with one answer per object; an
// answer that could not be computed carries "error" instead. argocd-cm FILE is an argocd-cm ConfigMap (YAML),
// read through Argo CD's own settings manager.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: verdicts kstatus|argocd-health|argocd-actions|argocd-run|wait [flags]")
	}
	command, args := os.Args[1], os.Args[2:]
	var err error
	switch command {
	case "kstatus":
		err = perObject(func(obj *unstructured.Unstructured) any { return computeKstatus(obj) })
	case "argocd-health", "argocd-actions", "argocd-run":
		err = runArgoCD(command, args)
	case "wait":
		err = runWait(args)
	default:
		err = fmt.Errorf("unknown command %q", command)
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "verdicts:", message)
	os.Exit(2)
}

// perObject decodes the JSON array on stdin and writes one answer per object.
func perObject(answer func(*unstructured.Unstructured) any) error {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var objects []json.RawMessage
	if err := json.Unmarshal(data, &objects); err != nil {
		return fmt.Errorf("stdin must be a JSON array of objects: %w", err)
	}
	answers := make([]any, 0, len(objects))
	for _, raw := range objects {
		// Decoded as the API machinery decodes a live object (whole numbers become int64), as Argo CD's cache
		// and kstatus' poller see it.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			answers = append(answers, failure{err.Error()})
			continue
		}
		answers = append(answers, answer(obj))
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	return encoder.Encode(answers)
}

type failure struct {
	Error string `json:"error"`
}

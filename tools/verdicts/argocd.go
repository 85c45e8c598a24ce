package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/argoproj/gitops-engine/pkg/health"
	jsonpatch "github.com/evanphx/json-patch"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

type healthAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type actionAnswer struct {
	Name        string `json:"name"`
	Disabled    bool   `json:"disabled"`
	DisplayName string `json:"displayName,omitempty"`
	IconClass   string `json:"iconClass,omitempty"`
}

type operationAnswer struct {
	Operation string         `json:"operation"`
	Object    map[string]any `json:"object"`
	// Patch is what Argo CD's API server sends for a "patch" operation: the JSON merge patch from the live
	// object to the action's result (nil when the action changed nothing).
	Patch json.RawMessage `json:"patch,omitempty"`
}

func runArgoCD(command string, args []string) error {
	flags := flag.NewFlagSet(command, flag.ContinueOnError)
	configMap := flags.String("argocd-cm", "", "argocd-cm ConfigMap (YAML) with the resource customizations")
	action := flags.String("action", "", "argocd-run: the action to run")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *configMap == "" {
		return errors.New(command + ": --argocd-cm is required")
	}
	overrides, err := resourceOverrides(*configMap)
	if err != nil {
		return err
	}
	switch command {
	case "argocd-health":
		return perObject(func(obj *unstructured.Unstructured) any { return resourceHealth(obj, overrides) })
	case "argocd-actions":
		return perObject(func(obj *unstructured.Unstructured) any { return discoverActions(obj, overrides) })
	default:
		if *action == "" {
			return errors.New("argocd-run: --action is required")
		}
		return perObject(func(obj *unstructured.Unstructured) any { return runAction(obj, overrides, *action) })
	}
}

// resourceOverrides reads the resource customizations the way Argo CD does: its settings manager, over a
// clientset holding the given argocd-cm.
func resourceOverrides(path string) (map[string]v1alpha1.ResourceOverride, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cm.Name != "argocd-cm" || cm.Namespace == "" {
		return nil, fmt.Errorf("%s: not an argocd-cm ConfigMap with a namespace", path)
	}
	log.SetLevel(log.WarnLevel) // the settings manager's informer chatter
	secret := &corev1.Secret{}
	secret.Name, secret.Namespace = "argocd-secret", cm.Namespace
	secret.Labels = map[string]string{"app.kubernetes.io/part-of": "argocd"}
	clientset := fake.NewClientset(&cm, secret)
	manager := settings.NewSettingsManager(context.Background(), clientset, cm.Namespace)
	return manager.GetResourceOverrides()
}

// resourceHealth is what Argo CD's application controller computes for a live resource.
func resourceHealth(obj *unstructured.Unstructured, overrides map[string]v1alpha1.ResourceOverride) any {
	status, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
	if err != nil {
		return failure{err.Error()}
	}
	if status == nil {
		return failure{"no health check for " + obj.GroupVersionKind().GroupKind().String()}
	}
	return healthAnswer{Status: string(status.Status), Message: status.Message}
}

// discoverActions is the list of actions Argo CD's UI and CLI offer for a live resource.
func discoverActions(obj *unstructured.Unstructured, overrides map[string]v1alpha1.ResourceOverride) any {
	vm := lua.VM{ResourceOverrides: overrides}
	scripts, err := vm.GetResourceActionDiscovery(obj)
	if err != nil {
		return failure{err.Error()}
	}
	found, err := vm.ExecuteResourceActionDiscovery(obj, scripts)
	if err != nil {
		return failure{err.Error()}
	}
	actions := make([]actionAnswer, 0, len(found))
	for _, a := range found {
		actions = append(actions, actionAnswer{a.Name, a.Disabled, a.DisplayName, a.IconClass})
	}
	return map[string]any{"actions": actions}
}

// runAction runs an action as Argo CD's API server does (RunResourceActionV2) and returns, for each impacted
// resource, the operation and, for a patch, the merge patch the server would send.
func runAction(obj *unstructured.Unstructured, overrides map[string]v1alpha1.ResourceOverride, name string) any {
	vm := lua.VM{ResourceOverrides: overrides}
	liveBytes, err := json.Marshal(obj)
	if err != nil {
		return failure{err.Error()}
	}
	action, err := vm.GetResourceAction(obj, name)
	if err != nil {
		return failure{err.Error()}
	}
	impacted, err := vm.ExecuteResourceAction(obj, action.ActionLua, nil)
	if err != nil {
		return failure{err.Error()}
	}
	operations := make([]operationAnswer, 0, len(impacted))
	for _, resource := range impacted {
		answer := operationAnswer{Operation: string(resource.K8SOperation), Object: resource.UnstructuredObj.Object}
		if resource.K8SOperation == lua.PatchOperation {
			newBytes, err := json.Marshal(resource.UnstructuredObj)
			if err != nil {
				return failure{err.Error()}
			}
			patch, err := jsonpatch.CreateMergePatch(liveBytes, newBytes)
			if err != nil {
				return failure{err.Error()}
			}
			if string(patch) != "{}" {
				answer.Patch = patch
			}
		}
		operations = append(operations, answer)
	}
	return map[string]any{"operations": operations}
}

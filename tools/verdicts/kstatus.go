package main

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type kstatusAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func computeKstatus(obj *unstructured.Unstructured) any {
	result, err := status.Compute(obj)
	if err != nil {
		return failure{err.Error()}
	}
	return kstatusAnswer{Status: result.Status.String(), Message: result.Message}
}

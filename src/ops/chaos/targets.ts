import { StackClient } from '../stack/control.js';
import type { Stack, StackControl } from '../stack/stack.js';
import type { StackState } from '../stack/state.js';
import { Kubectl, type KubectlOptions } from './k8s.js';
import type { ChaosTarget, K8sTarget, StackTarget, UrlTarget } from './scenario.js';

/** A stack run by this process (tests, tools owning the stack). */
export function inProcessStackTarget(stack: Stack): StackTarget {
  return { kind: 'stack', url: stack.url, natsUrls: stack.natsUrls, control: stack, state: () => stack.state() };
}

/** Any StackControl (e.g. a StackClient of a detached stack) with its current state. */
export async function stackTarget(control: StackControl): Promise<StackTarget> {
  const state: StackState = await control.state();
  return { kind: 'stack', url: state.url, natsUrls: [...state.nats_urls], control, state: () => control.state() };
}

/** The detached local stack recorded in DIR/stack.json (default ./.stack). */
export function detachedStackTarget(dir: string): Promise<StackTarget> {
  return stackTarget(StackClient.open(dir));
}

export function k8sTarget(url: string, natsUrls: readonly string[], options: KubectlOptions = {}): K8sTarget {
  return { kind: 'k8s', url, natsUrls, kubectl: new Kubectl(options) };
}

export function urlTarget(url: string, natsUrls: readonly string[]): UrlTarget {
  return { kind: 'url', url, natsUrls };
}

export function describeTarget(t: ChaosTarget): string {
  switch (t.kind) {
    case 'stack': return `the local stack at ${t.url}`;
    case 'k8s': return `Kubernetes (kubectl; API namespace ${t.kubectl.layout.apiNamespace}) via ${t.url}`;
    case 'url': return t.url;
  }
}

export { Alerter, type AlerterOptions, type DeliveredEvent } from "./alerter";
export { deliver, emailChannel, ntfyChannel, webhookChannel, homeAssistantChannel, homeAssistantAccess, ping, ChannelFailed, type Channel, type Delivery } from "./channels";
export { healthChecks, meaningOf, type InputMeaning } from "./checks";
export { IncidentBook, emptyIncidentState, DEFAULT_POLICY, type Check, type Incident, type IncidentEvent, type IncidentState, type PolicyOptions } from "./incidents";
export { noticeOf, testNotice, TEST_TITLE, redact, adviceFor, localTime, clockTime, type Notice } from "./messages";
export { alertSetup, type AlertFields, type AlertCredentials, type AlertSetup } from "./config";

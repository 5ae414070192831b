// The edge of the staging stack under mocks: records, certificate, ports, the proxy's files and how it is shared.
import { checkStackEdge } from "../support/edge-stack.js";

checkStackEdge("staging");

import { benchServices } from "./bench-kit.js";
import { benchProbeAndEnqueue } from "./probe-and-enqueue.js";

/** `npm run bench`: every benchmark prints its figures beside a baseline measured in the same run. */
const services = await benchServices();
try {
  await benchProbeAndEnqueue(services);
} finally {
  await services.close();
}

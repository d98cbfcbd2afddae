// An AudioWorklet that turns the microphone into 16-bit PCM chunks of 100 ms at the context's sample rate
// (the playground opens its AudioContext at 16 kHz, the rate the model hears), posted to the page, which
// sends each as an input_audio_buffer.append event.
class PCM16Chunker extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 10);
    this.chunk = new Int16Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const s = Math.max(-1, Math.min(1, channel[i]));
        this.chunk[this.filled++] = s < 0 ? s * 32768 : s * 32767;
        if (this.filled === this.size) {
          // the buffer is handed over, not copied: it is detached here afterwards, hence a new one
          this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
          this.chunk = new Int16Array(this.size);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16-chunker", PCM16Chunker);
